// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"])]

let package = Package(
    name: "ftvm",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ftvm", targets: ["ftvm"]),
        .executable(name: "ftvm-agent", targets: ["ftvm-agent"]),
        .executable(name: "ftvm-demo-service", targets: ["ftvm-demo-service"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries and the one small shim for what Swift cannot import (ioctls, setns).
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .target(name: "CFTVMShim"),

        // OS layer: syscalls with EINTR retry, fds, mmap, sockets, tap devices.
        .target(
            name: "FTVMSystem",
            dependencies: ["CFTVMShim", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict),
        // Ethernet/ARP/IPv4/TCP parsing and rewriting: pure, no syscalls.
        .target(name: "FTVMWire", swiftSettings: strict),
        // HTTP/1.x message framing over byte streams (exchange boundaries, what a replay may mask): pure.
        .target(name: "FTVMHTTP", swiftSettings: strict),
        // The FT-TCP connection log in host shared memory.
        .target(
            name: "FTVMLog",
            dependencies: [
                "CFTVMShim", "FTVMSystem", "FTVMWire", .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        // The shared-memory channel layout, used by the host daemon and the guest agent alike.
        .target(
            name: "FTVMChannel",
            dependencies: ["FTVMSystem", .product(name: "Atomics", package: "swift-atomics")],
            swiftSettings: strict),
        // libvirt and domain XML.
        .target(
            name: "FTVMVirt",
            dependencies: [
                "CLibvirt", "CLibXML2", "FTVMSystem", "FTVMWire", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The packet path: the relay's thread loop, the log's writer (south side), replay and
        // splice, relay servers. Moves bytes; knows nothing of libvirt or the pair's lifecycle.
        .target(
            name: "FTVMDataPlane",
            dependencies: [
                "FTVMSystem", "FTVMChannel", "FTVMWire", "FTVMLog", "FTVMHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        // The host daemon: the pair's lifecycle, health, takeover and upgrade, config, metrics,
        // the control socket.
        .target(
            name: "FTVMController",
            dependencies: [
                "FTVMSystem", "FTVMChannel", "FTVMVirt", "FTVMWire", "FTVMLog", "FTVMHTTP", "FTVMDataPlane",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        // Running under systemd: sd_notify readiness and journald's native protocol (no libsystemd).
        .target(
            name: "FTVMSystemd",
            dependencies: [
                "FTVMSystem", .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        // In-process benchmarks (`ftvm bench`), kept out of the daemon's code.
        .target(
            name: "FTVMBench", dependencies: ["FTVMDataPlane", "FTVMLog", "FTVMSystem", "FTVMWire"],
            swiftSettings: strict),
        // CLI commands, in a library so they can be tested.
        .target(
            name: "FTVMCLI",
            dependencies: [
                "FTVMController", "FTVMDataPlane", "FTVMBench", "FTVMLog", "FTVMSystemd", "SeededRandom",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(name: "ftvm", dependencies: ["FTVMCLI"], swiftSettings: strict),

        // Guest side (built with --static-swift-stdlib by guest-agent/build.sh; no Foundation).
        .target(name: "FTVMDemoKit", path: "guest-agent/Sources/FTVMDemoKit", swiftSettings: strict),
        // What a guest service links to tell ftvm that a connection may be trimmed (the explicit trim).
        .target(
            name: "FTVMTrim", dependencies: ["FTVMChannel"], path: "guest-agent/Sources/FTVMTrim", swiftSettings: strict
        ),
        .executableTarget(
            name: "ftvm-demo-service", dependencies: ["FTVMDemoKit", "FTVMTrim"],
            path: "guest-agent/Sources/ftvm-demo-service", swiftSettings: strict),
        // The agent's pure parts (services file, cgroup files, ARP announcement): testable on the host.
        .target(name: "FTVMAgentKit", path: "guest-agent/Sources/FTVMAgentKit", swiftSettings: strict),
        .executableTarget(
            name: "ftvm-agent",
            dependencies: [
                "FTVMAgentKit", "FTVMChannel", "FTVMSystem", .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "guest-agent/Sources/ftvm-agent", swiftSettings: strict),

        .testTarget(name: "FTVMChannelTests", dependencies: ["FTVMChannel"]),
        // SplitMix64: the seeded generator of the tests' random cases and of `ftvm chaos`'s campaigns.
        .target(name: "SeededRandom"),
        .testTarget(name: "FTVMWireTests", dependencies: ["FTVMWire", "SeededRandom"]),
        .testTarget(name: "FTVMHTTPTests", dependencies: ["FTVMHTTP", "SeededRandom"]),
        .testTarget(name: "FTVMLogTests", dependencies: ["FTVMLog", "FTVMWire", "SeededRandom"]),
        .testTarget(name: "FTVMVirtTests", dependencies: ["FTVMVirt", "FTVMWire"], resources: [.copy("Golden")]),
        .testTarget(name: "FTVMDemoKitTests", dependencies: ["FTVMDemoKit"]),
        // A strict reader of the Prometheus text format, for the tests that check the daemon's metrics.
        .target(name: "PrometheusText", path: "Tests/PrometheusText"),
        .testTarget(
            name: "FTVMDataPlaneTests",
            dependencies: [
                "FTVMDataPlane", "FTVMWire", "FTVMLog", "FTVMChannel", "FTVMHTTP", "FTVMSystem", "SeededRandom",
            ]),
        .testTarget(
            name: "FTVMControllerTests",
            dependencies: [
                "FTVMController", "FTVMDataPlane", "FTVMWire", "FTVMLog", "FTVMChannel", "FTVMHTTP", "FTVMSystem",
                "PrometheusText", "SeededRandom",
            ]),
        .testTarget(name: "FTVMSystemdTests", dependencies: ["FTVMSystemd", "FTVMSystem"]),
        .testTarget(name: "FTVMSystemTests", dependencies: ["FTVMSystem", "FTVMWire"]),
        .testTarget(
            name: "FTVMCLITests", dependencies: ["FTVMCLI", "FTVMController", "FTVMSystem"], exclude: ["Golden"]),
        .testTarget(name: "FTVMAgentKitTests", dependencies: ["FTVMAgentKit", "FTVMWire"]),
        // Fixtures/: an operator's domain and network XML, read by path (images/test-disk.sh too).
        .testTarget(
            name: "IntegrationTests", dependencies: ["FTVMDemoKit", "FTVMSystem", "PrometheusText"],
            exclude: ["Fixtures"]),
    ]
)
