import FTVMChannel
import FTVMDataPlane
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
        /// The guest's link to the relay (`GuestLink.id`).
        var link: UInt16
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
        var lifecycle = PairLifecycle()
        var guests: [Guest] = []
        var nextGeneration = 1
        var recoveries = 0
        var lastRecovery: RecoveryRecord?
        /// The recovery under way (or waiting for its re-protection).
        var recovery: Recovery?
        /// Notes for the next recovery's record (a restarted daemon finishing one).
        var recoveryNotes: [String] = []
        var lastInjection: Injection?
        var events: [(domain: String, event: LifecycleEvent)] = []
        /// What new guests are made from (an upgrade changes the image).
        var source: GuestSource
        var upgrade: UpgradeRecord?
        var upgradeRun: UpgradeRun?
        var handled = HandledActions()

        var phase: Phase { lifecycle.phase }
        /// The guest the lifecycle says serves (during an upgrade's drain, the old one).
        var primary: Guest? { lifecycle.watchedPrimary.flatMap(guest(named:)) }
        var backup: Guest? { lifecycle.watchedBackup.flatMap(guest(named:)) }

        func guest(named domain: String) -> Guest? { guests.first { $0.domain == domain } }
    }

    let config: PairConfig
    let logger: Logger
    let virt: LibvirtConnection
    let accelerator: Accelerator
    let network: ClientNetwork
    /// HTTPS terminated on the host, when the pair serves it.
    let terminator: TLSTerminator?
    let relay: Relay
    let state: Mutex<State>
    let done = Mutex<Bool>(false)
    let metrics: PairMetrics
    let heartbeats = HeartbeatClock()
    /// The health loop's `HeartbeatDetector.stallsForgiven`, for the metrics.
    let heartbeatStallsForgiven = Atomic<Int>(0)
    let metricsServer: MetricsServer?
    /// The pair's phase now (what `ftvm status` reports); the systemd notifier follows it.
    public var phase: Phase { state.withLock { $0.phase } }
    private let control: ControlServer
    private let subscription = Mutex<EventSubscription?>(nil)
    /// Guests a previous daemon of this pair left running (it crashed or was killed): this
    /// daemon adopts them instead of booting new ones (invariant 6, restartable).
    private let inherited: [GuestMetadata]

    /// Sets up everything that does not involve a guest (`PairHost.prepare` has made the
    /// directories). On failure it removes what it made.
    public init(config: PairConfig, source: GuestSource, logger: Logger) throws {
        state = Mutex(State(source: source))
        self.logger = logger
        metrics = PairMetrics(pair: config.name)
        // First, so that an address the operator chose and cannot have leaves nothing made.
        metricsServer = try config.metrics.bind().map(MetricsServer.init)
        virt = try LibvirtConnection(uri: config.libvirtURI, logger: logger)
        // An operator's domain brings its own identity and network: the relay takes the NIC's
        // MAC, and its uplink goes where the NIC was, at that bridge's MTU.
        var config = config
        var bridge: String?
        if case .domain(let template) = source {
            let name: String
            switch template.uplink {
            case .network(let network): name = try virt.bridge(ofNetwork: network)
            case .bridge(let host): name = host
            }
            config.macAddress = template.mac.description
            config.mtu = try ClientNetwork.mtu(ofBridge: name)
            bridge = name
        }
        self.config = config
        accelerator = try Accelerator.fromEnvironment()
        inherited = try Self.inheritedGuests(config: config, virt: virt)
        control = try ControlServer(path: config.controlSocketPath)
        do {
            network = try ClientNetwork(config: config, bridge: bridge, logger: logger)
            if let tls = config.tls {
                for warning in try TLSTerminator.check(tls) { logger.warning("\(warning)") }
                terminator = try TLSTerminator(config: config, tls: tls, logger: logger)
            } else {
                terminator = nil
            }
            let log = try Self.openLog(config: config, fresh: inherited.isEmpty, logger: logger)
            guard let service = IPv4Address(config.serviceAddress) else {
                throw ConfigError.badAddress(config.serviceAddress)
            }
            // The splicer's frames to the guest carry its MAC (an operator's domain has its own).
            guard let serviceMAC = MACAddress(config.macAddress) else { throw ConfigError.badMAC(config.macAddress) }
            log.connectionBudget = config.connectionBudgetBytes
            relay = try Relay(
                tap: network.tap,
                southSide: SouthSide(
                    log: log, service: service, serviceMAC: serviceMAC, policy: config.logPolicy,
                    responseHeadsPath: config.responseHeadsPath, logger: logger),
                terminator: terminator?.taps, realtimePriority: config.relayPriority, logger: logger)
        } catch {
            control.close()
            throw error
        }
    }

    /// Brings the pair up and watches it until `down`. Throws (after cleaning up) when bring-up
    /// fails.
    public func run() throws {
        relay.start()
        terminator?.supervise { [self] in done.withLock { $0 } || state.withLock { $0.lifecycle.isStopping } }
        let events = try virt.subscribeLifecycleEvents { [self] domain, event in
            // libvirt's event thread must not block: queue it for the health loop.
            state.withLock { $0.events.append((domain, event)) }
        }
        subscription.withLock { $0 = events }
        control.start { [self] request in handle(request) }
        if let metricsServer {
            metricsServer.start { [self] in metrics.exposition(of: metricsSample()) }
            logger.notice(
                "serving metrics",
                metadata: ["url": "http://\(metricsServer.address)/metrics", "setting": "\(config.metrics)"])
        }
        do {
            if inherited.isEmpty {
                // (A new pair: what an earlier one of this name filed is not its history.)
                try? FileManager.default.removeItem(atPath: config.filedRecoveriesPath)
                try bringUp()
            } else {
                try adopt()
            }
        } catch {
            // A teardown (SIGTERM, `down`) during bring-up fails it in whatever step it was in,
            // a guest it destroyed seen as "stopped while booting" among them: that is a stop.
            let stopping = state.withLock { $0.lifecycle.isStopping }
            if !stopping { logger.error("bring-up failed", metadata: ["error": "\(error)"]) }
            tearDown()
            throw stopping ? PairError.stopping : error
        }
        monitor()
        control.waitUntilIdle()
    }

    // MARK: Bring-up

    private func bringUp() throws {
        let primary = try launch(role: .primary)
        relay.watch(primary.channel, port: primary.link)
        relay.connect(guestPort: primary.link)
        let backup = try launch(role: .backup)
        try waitUntilReady(primary)
        try waitUntilReady(backup)
        try virt.domain(named: backup.domain).suspend()
        feed(.broughtUp(primary: primary.domain, backup: backup.domain))
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
        try? FileManager.default.removeItem(atPath: config.responseHeadsPath)  // heads of another log's connections
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

    /// Takes over a pair whose previous daemon died, at whatever point it died: re-attaches the
    /// channels and finishes the job libvirt's view shows half done.
    /// - A running primary keeps serving (same ports); without a paused backup beside it, a new
    ///   one is booted (a re-protection the dead daemon did not finish).
    /// - No running primary (it failed, and the daemon died before or during the takeover): the
    ///   backup (paused, or running if the dead daemon had resumed it) takes over, or a fresh
    ///   guest if none can, and the open connections are replayed from the log that survived in
    ///   shared memory.
    /// Guests that can serve no role any more (retired, an interrupted upgrade's new guest, older
    /// primaries) are removed.
    private func adopt() throws {
        var guests: [Guest] = []
        for metadata in inherited where metadata.role != .retired {
            let channel = try Channel.open(path: metadata.sharedMemoryPath, create: false)
            let link = GuestLink(id: metadata.link)
            do {
                relay.attach(link: link.id, socket: try PacketSocket(interface: link.tap))
            } catch {
                throw PairError.linkMissing(domain: config.domainName(generation: metadata.generation), tap: link.tap)
            }
            guests.append(
                Guest(
                    generation: metadata.generation, domain: config.domainName(generation: metadata.generation),
                    role: metadata.role, link: metadata.link, channel: channel, metadata: metadata))
        }
        let states = Dictionary(
            uniqueKeysWithValues: guests.map { ($0.domain, try? virt.domain(named: $0.domain).state()) })
        func running(_ guest: Guest) -> Bool { if case .running = states[guest.domain] ?? nil { true } else { false } }
        // The newest running primary serves; a newest failed one is what a takeover starts from.
        let primaries = guests.filter { $0.role == .primary }.sorted { $0.generation > $1.generation }
        let serving = primaries.first(where: running)
        let failed = serving == nil ? primaries.first : nil
        // A paused backup, or one the dead daemon had already resumed when no primary runs; made
        // from what the primary runs (a backup of the version an upgrade replaced is not one).
        let made = (serving ?? failed)?.metadata.imageDirectory
        let backup = guests.filter { $0.role == .backup }.sorted { $0.generation > $1.generation }.first {
            (states[$0.domain] == .pausedByUser || (serving == nil && running($0)))
                && (made == nil || $0.metadata.imageDirectory == made)
        }
        // An upgrade's new guest whose agent was ready: the drain may have begun, so it may hold
        // connections of its own. The upgrade is finished rather than rolled back.
        let upgrade = guests.filter { $0.role == .upgrade }.sorted { $0.generation > $1.generation }.first {
            serving != nil && running($0) && $0.channel.agentState == .ready
        }
        let kept = [serving ?? failed, backup, upgrade].compactMap { $0 }
        let leftovers = inherited.map { config.domainName(generation: $0.generation) }.filter { domain in
            !kept.contains { $0.domain == domain }
        }
        // After an upgrade the primary runs a newer image than the one `up` named: keep using it.
        let image = (serving ?? failed ?? backup).flatMap { guest -> GuestImage? in
            guard case .image = state.withLock({ $0.source }) else { return nil }
            return try? GuestImage(directory: guest.metadata.imageDirectory)
        }
        let port = serving?.link
        state.withLock { state in
            state.guests = kept
            if let image { state.source = .image(image) }
            state.nextGeneration = (inherited.map(\.generation).max() ?? 0) + 1
        }
        leftovers.forEach { remove($0) }
        takeUpFiledRecoveries()
        if let serving, let upgrade, let source = upgradeSource(of: upgrade) {
            finishUpgrade(from: serving, backup: backup, to: upgrade, source: source)
            return
        }
        if let upgrade { remove(upgrade.domain) }
        if let serving, let port {
            relay.watch(serving.channel, port: port)
            relay.connect(guestPort: port)
            logger.notice(
                "adopted the running pair",
                metadata: ["primary": "\(serving.domain)", "backup": "\(backup?.domain ?? "none")"])
            feed(.adopted(primary: serving.domain, backup: backup?.domain))
            return
        }
        state.withLock {
            $0.handled.finishedByRestart += 1
            $0.recoveryNotes = ["found unfinished by a restarted daemon (pid \(getpid()))"]
        }
        // The dead daemon's own record of the takeover it began names its cause; libvirt shows a
        // fenced primary only as paused.
        let cause =
            recordedCause(of: failed?.domain) ?? failed.flatMap { domainStateCause($0.domain) }
            ?? .qemuDied(reason: "no primary domain left")
        logger.warning(
            "adopted a pair whose primary is not running: taking over",
            metadata: [
                "failed": "\(failed?.domain ?? "none")", "backup": "\(backup?.domain ?? "none")", "cause": "\(cause)",
            ])
        feed(
            .adoptedFailed(failed: failed?.domain, backup: backup?.domain, cause: cause), detectedAt: Monotonic.nanos())
    }

    /// Finishes an upgrade whose daemon died while its new guest ran: the old primary is fenced
    /// and every open connection, the old primary's and those the new guest took during the
    /// drain alike, is replayed into the new guest (a connection the new guest still holds is
    /// reset there first and replayed from the log, as after a takeover a killed daemon began).
    private func finishUpgrade(from old: Guest, backup: Guest?, to new: Guest, source: GuestSource) {
        let start = Monotonic.nanos()
        logger.notice(
            "adopted an unfinished upgrade: finishing it",
            metadata: ["old": "\(old.domain)", "new": "\(new.domain)", "version": "\(source.version)"])
        state.withLock { state in
            var record = UpgradeRecord(
                image: source.directory, fromVersion: old.metadata.imageVersion, toVersion: source.version,
                step: .moving,
                startedAt: ISO8601DateFormatter().string(from: Date()), drainTimeoutSeconds: 0)
            record.newPrimary = new.domain
            record.notes = ["finished by a restarted daemon (pid \(getpid())): every open connection moved by replay"]
            state.upgrade = record
            state.upgradeRun = UpgradeRun(
                source: source, drainTimeout: 0, readyTimeout: 0, timer: PhaseTimer(start: start), start: start)
            state.handled.finishedByRestart += 1
        }
        feed(.adoptedUpgrade(old: old.domain, backup: backup?.domain, new: new.domain))
    }

    /// What an interrupted upgrade's new guest was made from: its image, or the new definition
    /// of a protected domain the upgrade saved.
    private func upgradeSource(of guest: Guest) -> GuestSource? {
        switch state.withLock({ $0.source }) {
        case .image:
            return (try? GuestImage(directory: guest.metadata.imageDirectory)).map(GuestSource.image)
        case .domain:
            guard let xml = try? String(contentsOfFile: config.upgradingDefinitionPath, encoding: .utf8) else {
                return nil
            }
            return (try? OperatorDomain(xml: xml)).map(GuestSource.domain)
        }
    }

    /// Defines and starts a guest with a freshly formatted channel, from `source` (by default
    /// what the pair's guests are made from).
    func launch(role: GuestMetadata.Role, source: GuestSource? = nil) throws -> Guest {
        let (generation, source) = state.withLock { state in
            defer { state.nextGeneration += 1 }
            return (state.nextGeneration, source ?? state.source)
        }
        let domain = config.domainName(generation: generation)
        let channelPath = config.channelPath(generation: generation)
        let channel = try Channel.open(path: channelPath, create: true)
        try Self.giveToQEMU(channelPath)
        let network = try GuestTaps.create(pair: config.name, generation: generation)
        let metadata = GuestMetadata(
            role: role, pairName: config.name, generation: generation, imageDirectory: source.directory,
            imageVersion: source.version, link: network.id, sharedMemoryPath: channelPath)
        let guest = Guest(
            generation: generation, domain: domain, role: role, link: network.id, channel: channel,
            metadata: metadata)
        // From here `remove` undoes everything: the link, the channel, overlays, the domain.
        state.withLock { $0.guests.append(guest) }
        do {
            relay.attach(link: network.id, socket: try PacketSocket(interface: network.tap))
            try virt.define(xml: try definition(of: guest, from: source)).start()
        } catch {
            remove(domain)
            throw error
        }
        // A teardown that began meanwhile (`down` while a backup boots) may have listed the
        // pair's domains before this one existed: remove it here, or it would outlive the pair.
        if state.withLock({ $0.lifecycle.isStopping }) {
            remove(domain)
            throw PairError.stopping
        }
        logger.info("guest started", metadata: ["domain": "\(domain)", "role": "\(role)", "link": "\(network.tap)"])
        return guest
    }

    /// The libvirt definition of `guest`, made from `source`.
    private func definition(of guest: Guest, from source: GuestSource) throws -> String {
        let generation = guest.generation
        let sharedMemory = SharedMemoryDevice(
            name: config.channelName(generation: generation), sizeMiB: ChannelLayout.regionSize >> 20)
        let network = GuestLink(id: guest.link)
        let consoleLog = config.consoleLogPath(generation: generation)
        switch source {
        case .image(let image):
            guard let mac = MACAddress(config.macAddress) else { throw ConfigError.badMAC(config.macAddress) }
            return try DomainXML.render(
                DomainSpec(
                    name: guest.domain, virtType: accelerator, memoryMiB: config.memoryMiB, vcpus: config.vcpus,
                    boot: KernelBoot(
                        kernelPath: image.kernelPath, initrdPath: image.initrdPath,
                        commandLine: config.kernelCommandLine),
                    mac: mac, network: network, sharedMemory: sharedMemory, consoleLogPath: consoleLog,
                    metadata: guest.metadata))
        case .domain(let template):
            return try template.guestXML(
                name: guest.domain, virtType: accelerator, network: network, sharedMemory: sharedMemory,
                consoleLogPath: consoleLog, metadata: guest.metadata,
                overlays: try Overlays.create(for: template, generation: generation, config: config))
        }
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
            if state.withLock({ $0.lifecycle.isStopping }) { throw PairError.stopping }
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

    /// Destroys and undefines a guest and deletes its link and channel file.
    func remove(_ domain: String) {
        let guest = state.withLock { state -> Guest? in
            guard let index = state.guests.firstIndex(where: { $0.domain == domain }) else { return nil }
            return state.guests.remove(at: index)
        }
        var link = guest?.link
        do {
            if let found = try virt.domainIfDefined(named: domain) {
                link = link ?? (try? found.guestMetadata())??.link
                if try found.isActive() { try found.destroy() }
                try found.undefine()
            }
        } catch {
            logger.error("cannot remove guest", metadata: ["domain": "\(domain)", "error": "\(error)"])
        }
        if let link {
            relay.detach(link: link)
            GuestTaps.remove(GuestLink(id: link))
        }
        if let guest {
            try? FileManager.default.removeItem(atPath: guest.channel.path)
            Overlays.remove(generation: guest.generation, config: config)
        }
        logger.info("guest removed", metadata: ["domain": "\(domain)"])
    }

    // MARK: Teardown

    /// Takes the pair down (SIGTERM, SIGINT, `ftvm down`).
    public func stop() { tearDown() }

    /// Takes the pair down. Idempotent, and a second caller returns only once the first has
    /// finished: a SIGTERM during bring-up makes the bring-up fail and call it too, and `run()`
    /// (and with it the process) must not return while the signal's teardown is still removing
    /// guests.
    func tearDown() {
        feed(.stopRequested)
        while !done.withLock({ $0 }) { usleep(10_000) }
    }

    /// Removes everything the pair made: domains, channel files, namespace (and with it the tap).
    func removeEverything() {
        subscription.withLock { $0?.cancel() }
        relay.connect(guestPort: nil)
        relay.stop()
        PairCleanup.removeAll(config: config, virt: virt, logger: logger)
        metricsServer?.close()
        control.close()
        done.withLock { $0 = true }
    }
}

/// Why a pair could not be brought up; each says what to look at.
public enum PairError: Error, CustomStringConvertible {
    case agentFailed(domain: String, console: String)
    case guestStopped(domain: String, state: String, console: String)
    case bootTimeout(domain: String, seconds: Double, console: String)
    case stopping
    case noFreeLink
    case linkMissing(domain: String, tap: String)

    public var description: String {
        switch self {
        case .agentFailed(let domain, let console):
            "the agent in \(domain) reports failure (a service could not start)\n\(console)"
        case .guestStopped(let domain, let state, let console):
            "guest \(domain) stopped while booting (state \(state))\n\(console)"
        case .bootTimeout(let domain, let seconds, let console):
            "guest \(domain) did not report ready within \(Int(seconds)) s\n\(console)"
        case .stopping:
            "the pair is being taken down"
        case .noFreeLink:
            "no free name for a guest link tap (ftvgN) in 64 tries; remove stale ftvg taps with `ip link del`"
        case .linkMissing(let domain, let tap):
            "guest \(domain)'s link tap \(tap) is gone (deleted by hand?): the guest cannot be reached; "
                + "`ftvm down` and `ftvm up` again"
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
        TLSTerminator.remove(config: config)
        GuestTaps.removeAll(pair: config.name)
        Overlays.removeAll(config: config)
        for file in [
            config.controlSocketPath, config.pidFilePath, config.recoveryCausePath, config.filedRecoveriesPath,
        ] {
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
