import FTVMDataPlane
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

/// What `ftvm upgrade` did, or is doing: `ftvm status` shows it and the CLI follows it.
public struct UpgradeRecord: Sendable, Codable, Equatable {
    public enum Step: String, Sendable, Codable {
        case booting, draining, moving, retiring, reprotecting, done, failed
    }

    public var image: String
    public var fromVersion: String
    public var toVersion: String
    public var newPrimary: String?
    public var step: Step
    public var startedAt: String
    public var drainTimeoutSeconds: Double
    /// Connections open when new ones started going to the new guest (pinned to the old one).
    public var connectionsAtSwitch = 0
    /// Pinned connections still open on the old guest.
    public var connectionsLeft = 0
    /// Pinned connections that finished on the old guest, and those moved by replay (spliced) or
    /// reset when the drain ended.
    public var drained = 0
    /// Pinned connections that sat between two exchanges (an idle keep-alive, say) and moved to
    /// the new guest at that boundary during the drain: its version answers their next request.
    public var movedAtBoundary = 0
    public var replayed = 0
    public var reset = 0
    public var replay: ReplaySummary?
    /// Why the drain ended early: the old primary failed while it still served connections
    /// (they were moved by replay at once).
    public var oldPrimaryFailure: String?
    public var phases: [RecoveryRecord.Phase] = []
    public var errors: [String] = []
    /// What made this upgrade unusual without making it fail (a restarted daemon finished it).
    public var notes: [String]?
    public var totalMillis: Double?

    public var finished: Bool { step == .done || step == .failed }
}

/// What `ftvm upgrade` moves the service to.
public enum UpgradeTarget: Sendable, Equatable, Codable {
    /// An image directory (images/build.sh), for a pair of ftvm's images.
    case image(String)
    /// A new base disk for a protected domain's guests (its first writable disk is replaced).
    case disk(String)
    /// The operator's own shut-off domain with the new version's definition (same MAC, same
    /// network).
    case domain(String)
}

/// Why an upgrade cannot start; says what to do instead.
enum UpgradeError: Error, CustomStringConvertible {
    case invalid(String)

    var description: String {
        switch self {
        case .invalid(let why): why
        }
    }
}

extension PairDaemon {
    /// Starts replacing the running service with one booted from `image`; returns at once (the
    /// CLI follows progress through `status`). The steps, as `PairLifecycle` orders them:
    ///
    /// 1. Boot a guest from the new image (same identity) and wait for its agent: a failure or a
    ///    timeout removes it and leaves the old primary serving, untouched.
    /// 2. Pin every open connection to the old primary and send everything else (new
    ///    connections) to the new guest.
    /// 3. Wait until the pinned connections end, or `drainTimeout` passes. A pinned connection
    ///    that sits between two exchanges moves to the new guest at once (replay at that
    ///    boundary: nothing to re-inject), so only exchanges in progress hold the drain. The
    ///    health loop judges the old primary all along, as it judges any primary: its failure
    ///    ends the drain at once.
    /// 4. Cut the old primary off, fence it, and move the pinned connections still open by
    ///    replay into the new guest.
    /// 5. Retire the old primary and the old backup, then boot and pause a fresh backup from the
    ///    new image.
    func upgrade(to target: UpgradeTarget, drainTimeout: Double, readyTimeout: Double) -> ControlResponse {
        let source: GuestSource
        do {
            source = try resolve(target)
        } catch {
            return ControlResponse(error: error.description)
        }
        let start = Monotonic.nanos()
        let previous = state.withLock { state -> (UpgradeRecord?, UpgradeRun?) in
            defer {
                state.upgrade = UpgradeRecord(
                    image: source.directory, fromVersion: state.source.version, toVersion: source.version,
                    step: .booting, startedAt: ISO8601DateFormatter().string(from: Date()),
                    drainTimeoutSeconds: drainTimeout)
                state.upgradeRun = UpgradeRun(
                    source: source, drainTimeout: drainTimeout, readyTimeout: readyTimeout,
                    timer: PhaseTimer(start: start), start: start)
            }
            return (state.upgrade, state.upgradeRun)
        }
        if let refusal = feed(.upgradeRequested) {
            state.withLock { state in (state.upgrade, state.upgradeRun) = previous }
            return ControlResponse(error: refusal)
        }
        if case .domain(let template) = source {
            // A daemon killed during the upgrade finds the new definition here and finishes it.
            try? template.xml.write(toFile: config.upgradingDefinitionPath, atomically: true, encoding: .utf8)
        }
        logger.notice("upgrade started", metadata: ["from": "\(source.directory)", "version": "\(source.version)"])
        return ControlResponse(message: "upgrading to \(source.version) from \(source.directory)")
    }

    /// What the new guests are made from, checked against what the pair runs now.
    private func resolve(_ target: UpgradeTarget) throws(UpgradeError) -> GuestSource {
        let current = state.withLock { $0.source }
        switch (target, current) {
        case (.image(let directory), .image):
            do {
                return .image(try GuestImage(directory: directory))
            } catch {
                throw .invalid("\(error)")
            }
        case (.image, .domain(let template)):
            throw .invalid(
                "pair '\(config.name)' protects the libvirt domain \(template.name): upgrade it with --disk NEW.qcow2 (a new base disk) or --domain NEWDOMAIN (your shut-off domain with the new version's definition), not --image"
            )
        case (.disk, .image(let image)), (.domain, .image(let image)):
            throw .invalid(
                "pair '\(config.name)' runs ftvm's image \(image.directory): upgrade it with --image DIR; --disk and --domain are for a protected libvirt domain"
            )
        case (.disk(let path), .domain(let template)):
            guard let root = template.disks.first else {
                throw .invalid("domain \(template.name) has no writable file disk to replace")
            }
            guard path.hasPrefix("/"), FileManager.default.isReadableFile(atPath: path) else {
                throw .invalid("the new disk \(path) does not exist or cannot be read (give an absolute path)")
            }
            do {
                return .domain(try template.replacingDisk(root.target, with: path))
            } catch {
                throw .invalid("\(error)")
            }
        case (.domain(let name), .domain(let template)):
            let new: OperatorDomain
            do {
                let found = try virt.domain(named: name)
                guard try !found.isActive() else {
                    throw UpgradeError.invalid(
                        "domain \(name) is running: shut it down (`virsh shutdown \(name)`); ftvm runs its disks as read-only bases, which nothing may write meanwhile"
                    )
                }
                new = try OperatorDomain(xml: try found.xmlDescription(inactive: true))
            } catch let error as UpgradeError {
                throw error
            } catch {
                throw .invalid("\(error)")
            }
            guard new.mac == template.mac else {
                throw .invalid(
                    "domain \(name)'s NIC has MAC \(new.mac), the service's is \(template.mac): give it the same <mac address> (the clients know that one)"
                )
            }
            guard new.uplink == template.uplink else {
                throw .invalid(
                    "domain \(name)'s NIC is on the \(new.uplink), the service's on the \(template.uplink): put it on the same one"
                )
            }
            return .domain(new)
        }
    }

    /// Boots the upgrade's new guest on a thread of its own, then follows the drain from there.
    func startUpgradeGuest() {
        guard let run = state.withLock({ $0.upgradeRun }) else { return }
        let thread = Thread { [self] in
            var launched: String?
            do {
                let fresh = try launch(role: .upgrade, source: run.source)
                launched = fresh.domain
                try waitUntilReady(fresh, timeoutSeconds: run.readyTimeout)
            } catch {
                logger.error("upgrade: the new guest did not become ready", metadata: ["error": "\(error)"])
                feed(.upgradeGuestFailed(domain: launched, reason: "\(error)"))
                return
            }
            guard let launched else { return }
            feed(.upgradeGuestReady(launched))
            drain(deadline: Monotonic.nanos() &+ UInt64(run.drainTimeout * 1e9))
            feed(.drainEnded)
        }
        thread.name = "ftvm-upgrade"
        thread.start()
    }

    /// New connections go to the new guest; open ones stay with the old primary.
    func beginDrain(to fresh: Guest) {
        markUpgrade(.boot)
        relay.watch(fresh.channel, port: fresh.link)
        let movedBefore = relay.counters.movedAtBoundary
        let pinned = relay.beginDrain(to: fresh.link)
        state.withLock { $0.upgradeRun?.movedBefore = movedBefore }
        markUpgrade(.switch)
        update {
            $0.newPrimary = fresh.domain
            $0.step = .draining
            $0.connectionsAtSwitch = pinned
            $0.connectionsLeft = pinned
        }
        logger.notice(
            "upgrade: new connections go to the new guest",
            metadata: ["draining": "\(pinned)", "domain": "\(fresh.domain)"])
    }

    /// Follows the drain until the pinned connections are gone, the deadline passes, or the
    /// lifecycle ended it (the old primary failed, or the pair is taken down).
    private func drain(deadline: UInt64) {
        while Monotonic.nanos() < deadline {
            let (draining, movedBefore) = state.withLock { state -> (Bool, UInt64) in
                guard case .upgrading(let upgrade) = state.lifecycle.state else { return (false, 0) }
                return (upgrade.step == .draining, state.upgradeRun?.movedBefore ?? 0)
            }
            guard draining else { return }
            let left = relay.connectionsDraining
            update {
                $0.connectionsLeft = left
                $0.movedAtBoundary = Int(relay.counters.movedAtBoundary - movedBefore)
            }
            if left == 0 { return }
            usleep(20_000)
        }
    }

    /// Ends the drain: counts how it ended and cuts the old primary off.
    func endDrain() {
        let left = relay.connectionsDraining
        relay.endDrain()
        markUpgrade(.drain)
        let (movedBefore, failure) = state.withLock { state -> (UInt64, FailureCause?) in
            guard case .upgrading(let upgrade) = state.lifecycle.state else { return (0, nil) }
            return (state.upgradeRun?.movedBefore ?? 0, upgrade.oldFailure)
        }
        let moved = Int(relay.counters.movedAtBoundary - movedBefore)
        if let failure {
            logger.warning(
                "upgrade: the old primary failed during the drain; moving its connections now",
                metadata: ["cause": "\(failure)"])
        }
        update {
            $0.oldPrimaryFailure = failure.map { "\($0)" }
            $0.connectionsLeft = left
            $0.movedAtBoundary = moved
            $0.drained = max(0, $0.connectionsAtSwitch - left - moved)
            $0.step = .moving
        }
    }

    /// Replays what the fenced old primary still served (`pinnedOnly`), or every open
    /// connection (an upgrade a restarted daemon finishes), into the new guest.
    func move(into fresh: Guest, pinnedOnly: Bool) {
        let left = pinnedOnly ? state.withLock { $0.upgrade?.connectionsLeft ?? 0 } : 1
        relay.watch(fresh.channel, port: fresh.link)
        // A connection the drain moved at an exchange boundary a moment ago may still be
        // handshaking with the new guest (milliseconds: nothing to re-inject). Let it settle, or
        // the replay's report would count it among the moved ones too.
        for _ in 0..<2000 where (relay.replayReport?.pending ?? 0) > 0 { usleep(1000) }
        let replayStart = Monotonic.nanos()
        relay.beginReplay(pinnedOnly: pinnedOnly)
        guard var timer = state.withLock({ $0.upgradeRun?.timer }) else { return }
        let summary = left > 0 ? awaitReplay(startedAfter: replayStart, timer: &timer) : nil
        timer.mark(.move, at: Monotonic.nanos())
        state.withLock { $0.upgradeRun?.timer = timer }
        update { record in
            record.replay = summary
            record.replayed = summary?.spliced ?? 0
            record.reset = summary?.reset ?? 0
            record.errors += summary?.resets ?? []
            record.connectionsLeft = summary?.pending ?? 0
            record.step = .retiring
        }
    }

    /// New guests come from the new image from now on; the pair waits for its new backup.
    func adoptUpgradeSource() {
        state.withLock { state in
            guard let run = state.upgradeRun else { return }
            state.source = run.source
            state.upgradeRun?.timer.mark(.retire, at: Monotonic.nanos())
            state.upgrade?.phases = state.upgradeRun?.timer.phases ?? []
            state.upgrade?.step = .reprotecting
        }
    }

    private func markUpgrade(_ phase: RecoveryPhase) {
        state.withLock { $0.upgradeRun?.timer.mark(phase, at: Monotonic.nanos()) }
    }

    private func update(_ change: (inout UpgradeRecord) -> Void) {
        state.withLock { state in
            guard var record = state.upgrade else { return }
            change(&record)
            state.upgrade = record
        }
    }
}
