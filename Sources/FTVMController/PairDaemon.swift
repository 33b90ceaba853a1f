import FTVMChannel
import FTVMLog
import FTVMSystem
import FTVMVirt
import FTVMWire
import Foundation
import Glibc
import Logging
import Synchronization

/// The host daemon for one protected pair: it owns the client network, the relay, the guests'
/// channels and the libvirt domains, watches the primary, and answers the control socket.
///
/// Threads: the caller's thread runs `run()` (bring-up, then the health loop, which also runs
/// takeovers); re-protection, the relay and the control server have threads of their own;
/// libvirt events arrive on libvirt's. Pair state lives behind one mutex, never held across a
/// libvirt call.
public final class PairDaemon: Sendable {
    public enum Phase: String, Sendable {
        /// Booting the first pair.
        case starting
        /// A primary serves and a paused backup waits.
        case protected
        /// A primary serves; no backup is ready (re-protection under way, or it failed).
        case unprotected
        /// A takeover is running.
        case failingOver = "failing-over"
        /// `ftvm upgrade` is moving the service to a guest booted from a new image.
        case upgrading
        case stopping
    }

    /// One guest of the pair. The generation numbers the domains ever made for the pair, so a
    /// fresh backup never reuses a name.
    struct Guest: Sendable {
        var generation: Int
        var domain: String
        var role: GuestMetadata.Role
        var guestPort: UInt16
        var channel: Channel
        var metadata: GuestMetadata
    }

    /// The last fault `ftvm inject` put in: detection is measured from it.
    struct Injection: Sendable {
        var fault: Fault
        var domain: String
        var atNanos: UInt64
    }

    struct State: Sendable {
        var phase = Phase.starting
        var guests: [Guest] = []
        var nextGeneration = 1
        var recoveries = 0
        var lastRecovery: RecoveryRecord?
        var lastInjection: Injection?
        var events: [(domain: String, event: LifecycleEvent)] = []
        /// The image new guests boot from (an upgrade changes it).
        var image: GuestImage
        var upgrade: UpgradeRecord?

        var primary: Guest? { guests.first { $0.role == .primary } }
        var backup: Guest? { guests.first { $0.role == .backup } }
    }

    let config: PairConfig
    let logger: Logger
    let virt: LibvirtConnection
    let accelerator: Accelerator
    let network: ClientNetwork
    let relay: Relay
    let state: Mutex<State>
    let done = Mutex<Bool>(false)
    /// Each guest's heartbeat age, sampled by the health loop for `ftvm status` and `ftvm watch`.
    let heartbeatAges = HeartbeatAges()
    private let control: ControlServer
    private let subscription = Mutex<EventSubscription?>(nil)
    /// Guests a previous daemon of this pair left running (it crashed or was killed): this
    /// daemon adopts them instead of booting new ones (invariant 6, restartable).
    private let inherited: [GuestMetadata]

    /// Sets up everything that does not involve a guest. On failure it removes what it made.
    public init(config: PairConfig, image: GuestImage, logger: Logger) throws {
        self.config = config
        state = Mutex(State(image: image))
        self.logger = logger
        try FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: PairConfig.logDirectory, withIntermediateDirectories: true)
        virt = try LibvirtConnection(uri: config.libvirtURI, logger: logger)
        accelerator = try Accelerator.fromEnvironment()
        inherited = try Self.inheritedGuests(config: config, virt: virt)
        control = try ControlServer(path: config.controlSocketPath)
        do {
            network = try ClientNetwork(config: config, logger: logger)
            // The guests' QEMUs send to the daemon port in their definitions: keep it.
            let port = inherited.first?.daemonPort ?? 0
            let log = try Self.openLog(config: config, fresh: inherited.isEmpty, logger: logger)
            guard let service = IPv4Address(config.serviceAddress) else {
                throw ConfigError.badAddress(config.serviceAddress)
            }
            log.connectionBudget = config.connectionBudgetBytes
            relay = Relay(
                tap: network.tap, socket: try UDPSocket(loopbackPort: port),
                southSide: SouthSide(log: log, service: service, policy: config.logPolicy, logger: logger),
                logger: logger)
        } catch {
            control.close()
            throw error
        }
    }

    /// Brings the pair up and watches it until `down`. Throws (after cleaning up) when bring-up
    /// fails.
    public func run() throws {
        relay.start()
        let events = try virt.subscribeLifecycleEvents { [self] domain, event in
            // libvirt's event thread must not block: queue it for the health loop.
            state.withLock { $0.events.append((domain, event)) }
        }
        subscription.withLock { $0 = events }
        control.start { [self] request in handle(request) }
        do {
            if inherited.isEmpty { try bringUp() } else { try adopt() }
        } catch {
            logger.error("bring-up failed", metadata: ["error": "\(error)"])
            tearDown()
            throw error
        }
        monitor()
        control.waitUntilIdle()
    }

    // MARK: Bring-up

    private func bringUp() throws {
        let primary = try launch(role: .primary)
        relay.watch(primary.channel, port: primary.guestPort)
        relay.connect(guestPort: primary.guestPort)
        let backup = try launch(role: .backup)
        try waitUntilReady(primary)
        try waitUntilReady(backup)
        try virt.domain(named: backup.domain).suspend()
        state.withLock { $0.phase = .protected }
        logger.info("pair protected", metadata: ["primary": "\(primary.domain)", "backup": "\(backup.domain)"])
    }

    /// The connection log: re-attached when a previous daemon's pair is adopted (its open
    /// connections are still logged there), created afresh otherwise.
    private static func openLog(config: PairConfig, fresh: Bool, logger: Logger) throws -> ConnectionLog {
        if !fresh, FileManager.default.fileExists(atPath: config.logPath) {
            let log = try ConnectionLog.attach(path: config.logPath)
            logger.notice(
                "connection log re-attached", metadata: ["open": "\(log.usage.slotsUsed)", "path": "\(config.logPath)"])
            return log
        }
        try? FileManager.default.removeItem(atPath: config.logPath)
        return try ConnectionLog.create(
            path: config.logPath, slots: config.logSlots, chunks: config.logChunks, chunkSize: config.logChunkSize)
    }

    /// The pair's domains that libvirt still has, with their metadata, oldest first.
    private static func inheritedGuests(config: PairConfig, virt: LibvirtConnection) throws -> [GuestMetadata] {
        try virt.allDomains()
            .filter { $0.name.hasPrefix(config.domainPrefix) }
            .compactMap { try $0.guestMetadata() }
            .filter { $0.pairName == config.name }
            .sorted { $0.generation < $1.generation }
    }

    /// Takes over a pair whose previous daemon died: re-attaches the channels, reconnects the
    /// primary to the uplink (same ports), and re-protects if no paused backup is there.
    private func adopt() throws {
        var guests: [Guest] = []
        var leftovers: [String] = []
        for metadata in inherited {
            let domain = config.domainName(generation: metadata.generation)
            guard metadata.role == .primary || metadata.role == .backup else {
                leftovers.append(domain)
                continue
            }
            let channel = try Channel.open(path: metadata.sharedMemoryPath, create: false)
            guests.append(
                Guest(
                    generation: metadata.generation, domain: domain, role: metadata.role,
                    guestPort: metadata.guestPort, channel: channel, metadata: metadata))
        }
        guard let primary = guests.first(where: { $0.role == .primary }),
            case .running = try virt.domain(named: primary.domain).state()
        else {
            throw PairError.cannotAdopt(
                "no running primary among \(inherited.map { "generation \($0.generation) (\($0.role))" }); remove the pair with `ftvm down --name \(config.name)` and start again"
            )
        }
        relay.watch(primary.channel, port: primary.guestPort)
        relay.connect(guestPort: primary.guestPort)
        let backup = guests.first { $0.role == .backup }
        let backupPaused = try backup.map { try virt.domain(named: $0.domain).state() } == .pausedByUser
        // After an upgrade the primary runs a newer image than the one `up` named: keep using it.
        let image = try? GuestImage(directory: primary.metadata.imageDirectory)
        state.withLock { state in
            state.guests = guests
            if let image { state.image = image }
            state.nextGeneration = (inherited.map(\.generation).max() ?? 0) + 1
            state.phase = backupPaused ? .protected : .unprotected
        }
        leftovers.forEach { remove($0) }
        logger.notice(
            "adopted the running pair",
            metadata: ["primary": "\(primary.domain)", "backup": "\(backup?.domain ?? "none")"])
        if !backupPaused {
            if let backup { remove(backup.domain) }
            let thread = Thread { [self] in reprotect(retiring: nil, detectedAt: Monotonic.nanos()) }
            thread.name = "ftvm-reprotect"
            thread.start()
        }
    }

    /// Defines and starts a guest with a freshly formatted channel.
    /// Defines and starts a guest from `image` (by default the pair's current one).
    func launch(role: GuestMetadata.Role, image: GuestImage? = nil) throws -> Guest {
        let (generation, image) = state.withLock { state in
            defer { state.nextGeneration += 1 }
            return (state.nextGeneration, image ?? state.image)
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
            boot: KernelBoot(
                kernelPath: image.kernelPath, initrdPath: image.initrdPath, commandLine: config.kernelCommandLine),
            mac: mac, network: UDPNetwork(daemonPort: relay.socket.port, guestPort: guestPort),
            sharedMemory: SharedMemoryDevice(
                name: config.channelName(generation: generation), sizeMiB: ChannelLayout.regionSize >> 20),
            consoleLogPath: config.consoleLogPath(generation: generation), metadata: metadata)
        let guest = Guest(
            generation: generation, domain: domain, role: role, guestPort: guestPort, channel: channel,
            metadata: metadata)
        state.withLock { $0.guests.append(guest) }
        try virt.define(spec).start()
        // A teardown that began meanwhile (`down` while a backup boots) may have listed the
        // pair's domains before this one existed: remove it here, or it would outlive the pair.
        if state.withLock({ $0.phase == .stopping }) {
            remove(domain)
            throw PairError.stopping
        }
        logger.info("guest started", metadata: ["domain": "\(domain)", "role": "\(role)", "port": "\(guestPort)"])
        return guest
    }

    /// QEMU (as libvirt-qemu) maps the channel file read-write.
    private static func giveToQEMU(_ path: String) throws {
        try FileManager.default.setAttributes(
            [.ownerAccountName: "libvirt-qemu", .posixPermissions: 0o660], ofItemAtPath: path)
    }

    func waitUntilReady(_ guest: Guest, timeoutSeconds: Double? = nil) throws {
        let seconds = timeoutSeconds ?? config.bootTimeoutSeconds
        let deadline = Date().addingTimeInterval(seconds)
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
            guard case .running = try virt.domain(named: guest.domain).state() else {
                let domainState = (try? virt.domain(named: guest.domain).state()).map { "\($0)" } ?? "gone"
                throw PairError.guestStopped(domain: guest.domain, state: domainState, console: consoleTail(guest))
            }
            if state.withLock({ $0.phase == .stopping }) { throw PairError.stopping }
            usleep(100_000)
        }
        throw PairError.bootTimeout(domain: guest.domain, seconds: seconds, console: consoleTail(guest))
    }

    private func consoleTail(_ guest: Guest) -> String {
        let path = config.consoleLogPath(generation: guest.generation)
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let tail = text.split(separator: "\n").suffix(15).joined(separator: "\n")
        return tail.isEmpty ? "(console log \(path) is empty)" : "last console lines (\(path)):\n\(tail)"
    }

    /// Changes a guest's role in the pair state and in its libvirt metadata.
    func setRole(_ role: GuestMetadata.Role, of domain: String) {
        let metadata = state.withLock { state -> GuestMetadata? in
            guard let index = state.guests.firstIndex(where: { $0.domain == domain }) else { return nil }
            state.guests[index].role = role
            state.guests[index].metadata.role = role
            return state.guests[index].metadata
        }
        guard let metadata else { return }
        do {
            try virt.domain(named: domain).setGuestMetadata(metadata)
        } catch {
            logger.warning("cannot update role metadata", metadata: ["domain": "\(domain)", "error": "\(error)"])
        }
    }

    /// Destroys and undefines a guest and deletes its channel file.
    func remove(_ domain: String) {
        let guest = state.withLock { state -> Guest? in
            guard let index = state.guests.firstIndex(where: { $0.domain == domain }) else { return nil }
            return state.guests.remove(at: index)
        }
        do {
            if let found = try virt.domainIfDefined(named: domain) {
                if try found.isActive() { try found.destroy() }
                try found.undefine()
            }
        } catch {
            logger.error("cannot remove guest", metadata: ["domain": "\(domain)", "error": "\(error)"])
        }
        if let guest { try? FileManager.default.removeItem(atPath: guest.channel.path) }
        logger.info("guest removed", metadata: ["domain": "\(domain)"])
    }

    // MARK: Teardown

    /// Takes the pair down (SIGTERM, SIGINT, `ftvm down`).
    public func stop() { tearDown() }

    /// Removes everything the pair made: domains, channel files, namespace (and with it the tap).
    /// Idempotent; `run()` returns once it is done.
    func tearDown() {
        let first = state.withLock { state -> Bool in
            defer { state.phase = .stopping }
            return state.phase != .stopping
        }
        guard first else { return }
        subscription.withLock { $0?.cancel() }
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
    case cannotAdopt(String)
    case stopping

    public var description: String {
        switch self {
        case .agentFailed(let domain, let console):
            "the agent in \(domain) reports failure (a service could not start)\n\(console)"
        case .guestStopped(let domain, let state, let console):
            "guest \(domain) stopped while booting (state \(state))\n\(console)"
        case .bootTimeout(let domain, let seconds, let console):
            "guest \(domain) did not report ready within \(Int(seconds)) s\n\(console)"
        case .cannotAdopt(let why):
            "cannot adopt the pair a previous daemon left: \(why)"
        case .stopping:
            "the pair is being taken down"
        }
    }
}

/// Finds and removes whatever a pair left behind, with or without a daemon: libvirt domains
/// named for the pair, their channel files, the client namespace and the run directory's files.
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
