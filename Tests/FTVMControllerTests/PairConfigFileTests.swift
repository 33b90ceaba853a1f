import Foundation
import XCTest

@testable import FTVMController

/// The config file: every kind of error names the file, the key and the line; the example in
/// contrib/ parses; values are checked by the same rules as the options.
final class PairConfigFileTests: XCTestCase {
    static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("contrib/ftvm-example.yaml").path

    func testExampleParsesAndStatesTheDefaults() throws {
        let settings = try PairConfigFile.load(path: Self.example)
        // Every key but `domain` (the alternative to `image`) and `tls` (HTTPS has no default: its
        // section is shown commented out) is shown set in the example.
        XCTAssertEqual(
            Set(settings.entries.keys),
            Set(SettingKey.allCases).subtracting([.domain, .tlsPorts, .tlsCertificate, .tlsKey, .tlsSource]))
        let fromFile = try settings.resolve()
        let builtIn = try PairSettings().resolve()
        XCTAssertEqual(fromFile.config, builtIn.config, "the example's values must be the defaults it says they are")
        // And the defaults, read independently of the settings layer.
        let config = try PairConfig()
        XCTAssertEqual(fromFile.config, config)
        XCTAssertEqual(fromFile.config.metrics, .automatic)
    }

    func testValuesReachThePairConfig() throws {
        let resolved = try resolveSettings(
            """
            name: web
            image: /srv/img
            network:
              service-address: 192.168.50.10
              uplink-address: 192.168.50.1
              prefix-length: 26
              mtu: 1500
              mac: "52:54:00:aa:bb:cc"
              relay-priority: 0
            guest: {memory-mib: 512, vcpus: 2, boot-timeout-s: 60}
            health: {tick-ms: 50, missed-ticks: 4, fence: destroy}
            log: {size-mib: 64, connection-budget-mib: 8, idle-reclaim-s: 30}
            ports: {http: none}
            metrics: "127.0.0.2:9100"
            """)
        let config = resolved.config
        XCTAssertEqual(config.name, "web")
        XCTAssertEqual(config.imageDirectory, "/srv/img")
        XCTAssertEqual(config.serviceAddress, "192.168.50.10")
        XCTAssertEqual(config.uplinkAddress, "192.168.50.1")
        XCTAssertEqual(config.prefixLength, 26)
        XCTAssertEqual(config.mtu, 1500)
        XCTAssertEqual(config.macAddress, "52:54:00:aa:bb:cc")
        XCTAssertEqual(config.relayPriority, 0)
        XCTAssertEqual(config.memoryMiB, 512)
        XCTAssertEqual(config.vcpus, 2)
        XCTAssertEqual(config.bootTimeoutSeconds, 60)
        XCTAssertEqual(config.health.tickMillis, 50)
        XCTAssertEqual(config.health.missedTicks, 4)
        XCTAssertEqual(config.fence, .destroy)
        XCTAssertEqual(config.logChunks * config.logChunkSize, 64 << 20)
        XCTAssertEqual(config.connectionBudgetBytes, 8 << 20)
        XCTAssertEqual(config.logPolicy.idleReclaimNanos, 30_000_000_000)
        XCTAssertEqual(config.logPolicy.httpPorts, [])
        XCTAssertEqual(resolved.config.metrics, MetricsSetting(parsing: "127.0.0.2:9100"))
        XCTAssertEqual(try resolveSettings("ports:\n  http: [8080, 80]\n").config.logPolicy.httpPorts, [80, 8080])
        XCTAssertEqual(try resolveSettings("metrics: none\n").config.metrics, .off)
    }

    func testAnEmptyFileSetsNothing() throws {
        XCTAssertEqual(try PairConfigFile.parse("", path: "f").entries.count, 0)
        XCTAssertEqual(try PairConfigFile.parse("# only a comment\n", path: "f").entries.count, 0)
    }

    // MARK: Each kind of error

    func testUnknownKeySuggestsTheNearestValidOne() {
        XCTAssertEqual(
            settingsFailure("name: web\nhealth:\n  tick_ms: 50\n"),
            "/etc/ftvm/t.yaml:3:3: unknown key 'health.tick_ms'; did you mean 'health.tick-ms'?")
        XCTAssertEqual(
            settingsFailure("imgae: /srv/img\n"), "/etc/ftvm/t.yaml:1:1: unknown key 'imgae'; did you mean 'image'?")
        XCTAssertEqual(
            settingsFailure("netwrok:\n  mtu: 1500\n"),
            "/etc/ftvm/t.yaml:1:1: unknown key 'netwrok'; did you mean 'network'?")
        // A key of a section written at the top level.
        XCTAssertEqual(
            settingsFailure("missed-ticks: 3\n"),
            "/etc/ftvm/t.yaml:1:1: unknown key 'missed-ticks'; did you mean 'health.missed-ticks'?")
        // Nothing near: the valid keys of that level.
        XCTAssertEqual(
            settingsFailure("log:\n  colour: red\n"),
            "/etc/ftvm/t.yaml:2:3: unknown key 'log.colour'; valid keys here: size-mib, connection-budget-mib, idle-reclaim-s"
        )
    }

    func testWrongTypes() {
        XCTAssertEqual(
            settingsFailure("health:\n  tick-ms: fast\n"),
            "/etc/ftvm/t.yaml:2:12: health.tick-ms: must be an integer, not the string 'fast'")
        XCTAssertEqual(
            settingsFailure("health:\n  tick-ms: \"100\"\n"),
            "/etc/ftvm/t.yaml:2:12: health.tick-ms: must be an integer, not the string '100'")
        XCTAssertEqual(
            settingsFailure("log:\n  size-mib: 1.5\n"),
            "/etc/ftvm/t.yaml:2:13: log.size-mib: must be an integer, not the number 1.5")
        XCTAssertEqual(
            settingsFailure("image:\n  - a\n"), "/etc/ftvm/t.yaml:2:3: image: must be a string, not a list")
        XCTAssertEqual(settingsFailure("image:\n"), "/etc/ftvm/t.yaml:1:7: image: must be a string, not an empty value")
        XCTAssertEqual(
            settingsFailure("ports:\n  http: [80, web]\n"),
            "/etc/ftvm/t.yaml:2:9: ports.http: must be a list of ports like [80, 8080] or 'none'; the string 'web' is not a port"
        )
        XCTAssertEqual(
            settingsFailure("ports:\n  http: true\n"),
            "/etc/ftvm/t.yaml:2:9: ports.http: must be a list of ports like [80, 8080] or 'none', not the boolean true")
        XCTAssertEqual(
            settingsFailure("health: 5\n"),
            "/etc/ftvm/t.yaml:1:9: health: must be a mapping of keys (tick-ms, missed-ticks, fence)")
        XCTAssertEqual(
            settingsFailure("- name: web\n"),
            "/etc/ftvm/t.yaml:1:1: the file must be a mapping of keys (name:, image:, network:, …)")
    }

    func testOutOfRangeValues() {
        XCTAssertEqual(
            settingsFailure("health:\n  tick-ms: 5\n"), "/etc/ftvm/t.yaml:2:12: health.tick-ms: must be 10-10000, not 5"
        )
        XCTAssertEqual(
            settingsFailure("health:\n  missed-ticks: 1\n"),
            "/etc/ftvm/t.yaml:2:17: health.missed-ticks: must be 2-1000, not 1")
        XCTAssertEqual(
            settingsFailure("network:\n  mtu: 70000\n"),
            "/etc/ftvm/t.yaml:2:8: network.mtu: must be 576-65000, not 70000")
        XCTAssertEqual(
            settingsFailure("network:\n  relay-priority: 100\n"),
            "/etc/ftvm/t.yaml:2:19: network.relay-priority: must be 0-99, not 100")
        XCTAssertEqual(
            settingsFailure("ports:\n  http: [80, 70000]\n"),
            "/etc/ftvm/t.yaml:2:9: ports.http: 70000 is not a port 1-65535")
        XCTAssertEqual(
            settingsFailure("health:\n  fence: kill\n"),
            "/etc/ftvm/t.yaml:2:10: health.fence: must be pause or destroy, not 'kill'")
        XCTAssertTrue(settingsFailure("name: Web\n").hasPrefix("/etc/ftvm/t.yaml:1:7: name: invalid pair name 'Web'"))
        XCTAssertEqual(
            settingsFailure("metrics: 9477\n"),
            "/etc/ftvm/t.yaml:1:10: metrics: '9477' is not HOST:PORT (IPv4, port 1-65535, e.g. 127.0.0.1:9477), 'auto' or 'none'"
        )
        XCTAssertEqual(
            settingsFailure("network:\n  mac: \"01:00:5e:00:00:01\"\n"),
            "/etc/ftvm/t.yaml:2:8: network.mac: '01:00:5e:00:00:01' is not a unicast MAC address like 52:54:00:77:00:02"
        )
        XCTAssertEqual(
            settingsFailure("network:\n  service-address: 10.77.0.300\n"),
            "/etc/ftvm/t.yaml:2:20: network.service-address: '10.77.0.300' is not an IPv4 address like 10.77.0.2")
    }

    func testSettingsThatDependOnEachOther() {
        XCTAssertEqual(
            settingsFailure("log:\n  size-mib: 16\n  connection-budget-mib: 20\n"),
            "/etc/ftvm/t.yaml:3:26: log.connection-budget-mib: must be at most the log's size (16 MiB), not 20")
        // The budget left at its default (32 MiB) against a smaller log.
        XCTAssertEqual(
            settingsFailure("log:\n  size-mib: 16\n"),
            "--connection-budget-mib / log.connection-budget-mib (default): must be at most the log's size (16 MiB), not 32"
        )
        XCTAssertEqual(
            settingsFailure("network:\n  service-address: 10.77.1.2\n"),
            "/etc/ftvm/t.yaml:2:20: network.service-address: 10.77.1.2 and the uplink 10.77.0.1 are not in one /24")
        XCTAssertEqual(
            settingsFailure("network:\n  uplink-address: 10.77.0.2\n"),
            "/etc/ftvm/t.yaml:2:19: network.uplink-address: is the uplink's address too; the service and the uplink need one each"
        )
        XCTAssertEqual(
            settingsFailure("network:\n  service-address: 10.77.0.255\n"),
            "/etc/ftvm/t.yaml:2:20: network.service-address: 10.77.0.255 is the network or broadcast address of its /24"
        )
        XCTAssertEqual(
            settingsFailure("domain: web1\nimage: /srv/img\n"),
            "/etc/ftvm/t.yaml:2:8: image: a pair boots an image or protects a domain, not both: drop `image` or `domain`"
        )
        // A protected domain's address is on its own network, not the uplink's subnet.
        let protected = try? resolveSettings("domain: web1\nnetwork:\n  service-address: 192.168.9.5\n")
        XCTAssertEqual(protected?.domain, "web1")
        XCTAssertEqual(protected?.serviceAddressGiven, true)
        XCTAssertEqual(protected?.config.serviceAddress, "192.168.9.5")
    }

    func testSyntaxErrorsAndDuplicates() {
        XCTAssertEqual(
            settingsFailure("health:\n  tick-ms: [1, 2\nlog: {}\n"),
            "/etc/ftvm/t.yaml:3:4: not valid YAML: did not find expected ',' or ']'")
        XCTAssertEqual(
            settingsFailure("name: web\n name2: x\n"),
            "/etc/ftvm/t.yaml:2:7: not valid YAML: mapping values are not allowed in this context")
        XCTAssertTrue(
            settingsFailure("name: a\nname: b\n").hasSuffix("key 'name' given twice"),
            settingsFailure("name: a\nname: b\n"))
    }

    func testMissingAndUnreadableFiles() throws {
        XCTAssertThrowsError(try PairConfigFile.load(path: "/nonexistent/ftvm.yaml")) {
            XCTAssertEqual("\($0)", "cannot read config file /nonexistent/ftvm.yaml: no such file")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ftvm-cfg-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let binary = directory.appendingPathComponent("binary.yaml")
        try Data([0x6E, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]).write(to: binary)
        XCTAssertThrowsError(try PairConfigFile.load(path: binary.path)) {
            XCTAssertTrue("\($0)".hasPrefix("cannot read config file \(binary.path): "), "\($0)")
        }
    }

    // MARK: Options over the file

    func testAnOptionOverridesTheFileAndTheFileOverridesTheDefault() throws {
        let file = try PairConfigFile.parse("health:\n  tick-ms: 200\n  missed-ticks: 7\n", path: "f.yaml")
        var options = PairSettings()
        options.set(.tickMillis, .integer(300), from: .option("--tick-ms"))
        let config = try file.overridden(by: options).resolve().config
        XCTAssertEqual(config.health.tickMillis, 300, "the option wins")
        XCTAssertEqual(config.health.missedTicks, 7, "the file fills in what the options leave")
        XCTAssertEqual(config.fence, .pause, "the default fills in the rest")
        // An option's error names the option, not the file.
        options.set(.missedTicks, .integer(1), from: .option("--missed-ticks"))
        XCTAssertThrowsError(try file.overridden(by: options).resolve()) {
            XCTAssertEqual("\($0)", "--missed-ticks: must be 2-1000, not 1")
        }
    }

    func testAFileNamingAnotherPairThanNameIsAnError() throws {
        let file = try PairConfigFile.parse("name: api\n", path: "/etc/ftvm/web.yaml")
        var options = PairSettings()
        options.set(.name, .text("web"), from: .option("--name"))
        XCTAssertThrowsError(try file.overridden(by: options)) {
            XCTAssertEqual(
                "\($0)",
                "/etc/ftvm/web.yaml:1:7: name: names pair 'api' but --name names 'web'; make them agree or drop the key"
            )
        }
        options.set(.name, .text("api"), from: .option("--name"))
        XCTAssertEqual(try file.overridden(by: options).resolve().config.name, "api")
    }

    func testCommandLinePortLists() {
        XCTAssertEqual(PairSettings.ports(parsing: "80, 8080"), .ports([80, 8080]))
        XCTAssertEqual(PairSettings.ports(parsing: "none"), .ports([]))
        XCTAssertEqual(PairSettings.ports(parsing: "80,,81"), .text("80,,81"))
        var options = PairSettings()
        options.set(.httpPorts, PairSettings.ports(parsing: "80,x"), from: .option("--http-ports"))
        XCTAssertThrowsError(try options.resolve()) {
            XCTAssertEqual("\($0)", "--http-ports: '80,x' is not a list of ports like 80,8080 or 'none'")
        }
    }

    func testEditDistanceAgainstHandCountedCases() {
        XCTAssertEqual(PairConfigFile.editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(PairConfigFile.editDistance("", "abc"), 3)
        XCTAssertEqual(PairConfigFile.editDistance("tick_ms", "tick-ms"), 1)
        XCTAssertEqual(PairConfigFile.editDistance("same", "same"), 0)
    }
}
