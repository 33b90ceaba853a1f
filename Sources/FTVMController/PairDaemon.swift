import FTVMChannel
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc
import Logging
import Synchronization

/// The host daemon for one protected pair: it owns the client network, the relay, the guests'
/// channels and the libvirt domains, and answers the control socket.
///
/// Threads: the caller's thread runs `run()` (bring-up, then waiting for the end); the relay and
/// the control server have threads of their own. Pair state lives behind one mutex.
public final class PairDaemon: Sendable {
    public enum Phase: String, Sendable {
        case starting, protected, unprotected, stopping
    }

    /// One guest of the pair. The generation numbers the domains ever made for the pair, so a
    /// fresh backup never reuses a name.
    struct Guest: Sendable {
        var generation: Int
        var domain: String
        var role: GuestMetadata.Role
        var guestPort: UInt16
        var channel: Channel
    }

    struct State: Sendable {
        var phase = Phase.starting
        var guests: [Guest] = []
        var nextGeneration = 1
    }

    let config: PairConfig
    let image: GuestImage
    let logger: Logger
    let virt: LibvirtConnection
    let accelerator: Accelerator
    let network: ClientNetwork
    let relay: Relay
    let state = Mutex(State())
    private let done = Mutex<Bool>(false)
    private let control: ControlServer

    /// Sets up everything that does not involve a guest. On failure it removes what it made.
    public init(config: PairConfig, image: GuestImage, logger: Logger) throws {
        self.config = config
        self.image = image
        self.logger = logger
        try FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: PairConfig.logDirectory, withIntermediateDirectories: true)
        virt = try LibvirtConnection(uri: config.libvirtURI, logger: logger)
        accelerator = try Accelerator.fromEnvironment()
        control = try ControlServer(path: config.controlSocketPath)
        do {
            network = try ClientNetwork(config: config, logger: logger)
            relay = Relay(tap: network.tap, socket: try UDPSocket(), logger: logger)
        } catch {
            control.close()
            throw error
        }
    }

    /// Brings the pair up and serves until `down`. Throws (after cleaning up) when bring-up fails.
    public func run() throws {
        relay.start()
        control.start { [self] request in handle(request) }
        do {
            try bringUp()
        } catch {
            logger.error("bring-up failed", metadata: ["error": "\(error)"])
            tearDown()
            throw error
        }
        while !done.withLock({ $0 }) { usleep(100_000) }
    }

    // MARK: Bring-up

    private func bringUp() throws {
        let primary = try launch(role: .primary)
        relay.connect(guestPort: primary.guestPort)
        let backup = try launch(role: .backup)
        try waitUntilReady(primary)
        try waitUntilReady(backup)
        try virt.domain(named: backup.domain).suspend()
        state.withLock { $0.phase = .protected }
        logger.info("pair protected", metadata: ["primary": "\(primary.domain)", "backup": "\(backup.domain)"])
    }

    /// Defines and starts a guest with a freshly formatted channel.
    private func launch(role: GuestMetadata.Role) throws -> Guest {
        let generation = state.withLock { state in
            defer { state.nextGeneration += 1 }
            return state.nextGeneration
        }
        let domain = config.domainName(generation: generation)
        let channelPath = config.channelPath(generation: generation)
        let channel = try Channel.open(path: channelPath, create: true)
        try Self.giveToQEMU(channelPath)
        let guestPort = try UDPSocket.freePort()
        let metadata = GuestMetadata(
            role: role, pairName: config.name, generation: generation, imageDirectory: image.directory,
            imageVersion: image.version, daemonPort: relay.socket.port, guestPort: guestPort,
            sharedMemoryPath: channelPath)
        guard let mac = MACAddress(config.macAddress) else { throw ConfigError.badMAC(config.macAddress) }
        let spec = DomainSpec(
            name: domain, virtType: accelerator, memoryMiB: config.memoryMiB, vcpus: config.vcpus,
            boot: KernelBoot(kernelPath: image.kernelPath, initrdPath: image.initrdPath, commandLine: config.kernelCommandLine),
            mac: mac, network: UDPNetwork(daemonPort: relay.socket.port, guestPort: guestPort),
            sharedMemory: SharedMemoryDevice(name: config.channelName(generation: generation), sizeMiB: ChannelLayout.regionSize >> 20),
            consoleLogPath: config.consoleLogPath(generation: generation), metadata: metadata)
        let guest = Guest(generation: generation, domain: domain, role: role, guestPort: guestPort, channel: channel)
        state.withLock { $0.guests.append(guest) }
        let defined = try virt.define(spec)
        try defined.start()
        logger.info("guest started", metadata: ["domain": "\(domain)", "role": "\(role)", "port": "\(guestPort)"])
        return guest
    }

    /// QEMU (as libvirt-qemu) maps the channel file read-write.
    private static func giveToQEMU(_ path: String) throws {
        try FileManager.default.setAttributes(
            [.ownerAccountName: "libvirt-qemu", .posixPermissions: 0o660], ofItemAtPath: path)
    }

    private func waitUntilReady(_ guest: Guest) throws {
        let deadline = Date().addingTimeInterval(config.bootTimeoutSeconds)
        while Date() < deadline {
            switch guest.channel.agentState {
            case .ready:
                logger.info("agent ready", metadata: ["domain": "\(guest.domain)"])
                return
            case .failed:
                throw PairError.agentFailed(domain: guest.domain, console: consoleTail(guest))
            case .absent, .starting:
                break
            }
            let domainState = try virt.domain(named: guest.domain).state()
            guard case .running = domainState else {
                throw PairError.guestStopped(domain: guest.domain, state: "\(domainState)", console: consoleTail(guest))
            }
            usleep(100_000)
        }
        throw PairError.bootTimeout(domain: guest.domain, seconds: config.bootTimeoutSeconds, console: consoleTail(guest))
    }

    private func consoleTail(_ guest: Guest) -> String {
        let path = config.consoleLogPath(generation: guest.generation)
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let tail = text.split(separator: "\n").suffix(15).joined(separator: "\n")
        return tail.isEmpty ? "(console log \(path) is empty)" : "last console lines (\(path)):\n\(tail)"
    }

    // MARK: Control

    private func handle(_ request: ControlRequest) -> ControlResponse {
        switch request.command {
        case .status:
            return ControlResponse(status: status())
        case .down:
            let status = status()
            tearDown()
            return ControlResponse(status: status)
        }
    }

    func status() -> PairStatus {
        let snapshot = state.withLock { $0 }
        let guests = snapshot.guests.map { guest in
            GuestStatus(
                domain: guest.domain, role: guest.role.rawValue, generation: guest.generation,
                state: (try? virt.domain(named: guest.domain).state())?.word ?? "undefined",
                heartbeat: guest.channel.heartbeat, agent: guest.channel.agentState.description,
                imageVersion: guest.channel.imageVersion,
                services: guest.channel.services.map {
                    ServiceStatus(
                        name: $0.name, port: $0.port, state: $0.state.description, pid: $0.pid,
                        restarts: $0.restarts, lastExit: $0.lastExit)
                })
        }
        return PairStatus(
            name: config.name, phase: snapshot.phase.rawValue, protected: snapshot.phase == .protected,
            namespace: config.namespace, serviceAddress: config.serviceAddress,
            servicePorts: guests.first?.services.map(\.port) ?? [], accelerator: accelerator.rawValue,
            daemonPID: getpid(), guests: guests, relay: relay.counters)
    }

    /// Removes everything the pair made: domains, channel files, namespace (and with it the tap).
    /// Idempotent; the daemon's `run()` returns once it is done.
    func tearDown() {
        let first = state.withLock { state -> Bool in
            defer { state.phase = .stopping }
            return state.phase != .stopping
        }
        guard first else { return }
        relay.connect(guestPort: nil)
        relay.stop()
        PairCleanup.removeAll(config: config, virt: virt, logger: logger)
        control.close()
        done.withLock { $0 = true }
    }
}

/// Why a pair could not be brought up; each says what to look at.
public enum PairError: Error, CustomStringConvertible {
    case agentFailed(domain: String, console: String)
    case guestStopped(domain: String, state: String, console: String)
    case bootTimeout(domain: String, seconds: Double, console: String)

    public var description: String {
        switch self {
        case .agentFailed(let domain, let console):
            "the agent in \(domain) reports failure (a service could not start)\n\(console)"
        case .guestStopped(let domain, let state, let console):
            "guest \(domain) stopped while booting (state \(state))\n\(console)"
        case .bootTimeout(let domain, let seconds, let console):
            "guest \(domain) did not report ready within \(Int(seconds)) s\n\(console)"
        }
    }
}

/// Finds and removes whatever a pair left behind, with or without a daemon: libvirt domains
/// named for the pair, their channel files, the client namespace and the run directory.
public enum PairCleanup {
    public static func removeAll(config: PairConfig, virt: LibvirtConnection, logger: Logger) {
        for domain in (try? virt.allDomains()) ?? [] where domain.name.hasPrefix(config.domainPrefix) {
            if (try? domain.isActive()) == true { try? domain.destroy() }
            do {
                try domain.undefine()
                logger.info("domain removed", metadata: ["domain": "\(domain.name)"])
            } catch {
                logger.warning("cannot undefine domain", metadata: ["domain": "\(domain.name)", "error": "\(error)"])
            }
        }
        let shm = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        for file in shm where file.hasPrefix(config.domainPrefix) {
            try? FileManager.default.removeItem(atPath: "/dev/shm/\(file)")
        }
        ClientNetwork.remove(config: config)
        for file in [config.controlSocketPath, config.pidFilePath] {
            try? FileManager.default.removeItem(atPath: file)
        }
    }
}

extension DomainState {
    /// The state alone, as `virsh list` words it: running, paused, shut off, crashed.
    var word: String {
        switch self {
        case .running: "running"
        case .paused: "paused"
        case .shutoff: "shut off"
        case .crashed: "crashed"
        case .pmSuspended: "pmsuspended"
        case .other: "other"
        }
    }
}
