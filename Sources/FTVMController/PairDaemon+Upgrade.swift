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
    public var totalMillis: Double?

    public var finished: Bool { step == .done || step == .failed }
}

extension PairDaemon {
    /// Starts replacing the running service with one booted from `image`; returns at once (the
    /// CLI follows progress through `status`).
    ///
    /// 1. Boot a guest from the new image (same identity) and wait for its agent: a failure or a
    ///    timeout removes it and leaves the old primary serving, untouched.
    /// 2. Pin every open connection to the old primary and send everything else (new
    ///    connections) to the new guest.
    /// 3. Wait until the pinned connections end, or `drainTimeout` passes. A pinned connection
    ///    that sits between two exchanges moves to the new guest at once (replay at that
    ///    boundary: nothing to re-inject), so only exchanges in progress hold the drain.
    /// 4. Cut the old primary off, fence it, and move the pinned connections still open by
    ///    replay into the new guest.
    /// 5. Retire the old primary and the old backup, then boot and pause a fresh backup from the
    ///    new image.
    func upgrade(to image: GuestImage, drainTimeout: Double, readyTimeout: Double) -> ControlResponse {
        if case .domain(let template) = state.withLock({ $0.source }) {
            return ControlResponse(
                error:
                    "pair '\(config.name)' protects the libvirt domain \(template.name): an upgrade boots ftvm's own images, not an operator's domain (not supported yet)"
            )
        }
        let claimed = state.withLock { state -> PairDaemon.Guest? in
            guard state.phase == .protected, let primary = state.primary else { return nil }
            state.phase = .upgrading
            state.upgrade = UpgradeRecord(
                image: image.directory, fromVersion: state.source.version, toVersion: image.version, step: .booting,
                startedAt: ISO8601DateFormatter().string(from: Date()), drainTimeoutSeconds: drainTimeout)
            return primary
        }
        guard let primary = claimed else {
            let phase = state.withLock { $0.phase }
            return ControlResponse(
                error: "the pair is \(phase.rawValue); upgrade when it is protected (see `ftvm status`)")
        }
        let thread = Thread { [self] in
            runUpgrade(from: primary, to: image, drainTimeout: drainTimeout, readyTimeout: readyTimeout)
        }
        thread.name = "ftvm-upgrade"
        thread.start()
        return ControlResponse(message: "upgrading to \(image.version) from \(image.directory)")
    }

    private func runUpgrade(from old: Guest, to image: GuestImage, drainTimeout: Double, readyTimeout: Double) {
        let start = Monotonic.nanos()
        var timer = PhaseTimer(start: start)
        logger.notice("upgrade started", metadata: ["image": "\(image.directory)", "version": "\(image.version)"])

        // 1. Boot the new guest; on any failure the old primary serves on as if nothing happened.
        var fresh: Guest?
        do {
            fresh = try launch(role: .upgrade, image: image)
            try waitUntilReady(fresh!, timeoutSeconds: readyTimeout)
        } catch {
            if let fresh { remove(fresh.domain) }
            state.withLock { state in
                state.phase = .protected
                state.upgrade?.step = .failed
                state.upgrade?.errors.append(
                    "the new guest did not become ready, so nothing changed (the old primary serves): \(error)")
                state.upgrade?.totalMillis = PhaseTimer.millis(Monotonic.nanos() &- start)
            }
            logger.error("upgrade aborted: the new guest did not become ready", metadata: ["error": "\(error)"])
            return
        }
        guard let fresh else { return }
        timer.mark("boot", at: Monotonic.nanos())
        update {
            $0.newPrimary = fresh.domain
            $0.step = .draining
        }

        // 2. New connections go to the new guest; open ones stay where they are.
        relay.watch(fresh.channel, port: fresh.link)
        let movedBefore = relay.counters.movedAtBoundary
        let pinned = relay.beginDrain(to: fresh.link)
        timer.mark("switch", at: Monotonic.nanos())
        update {
            $0.connectionsAtSwitch = pinned
            $0.connectionsLeft = pinned
        }
        logger.notice(
            "upgrade: new connections go to the new guest",
            metadata: ["draining": "\(pinned)", "domain": "\(fresh.domain)"])

        // 3. Drain, watching the old primary as the health loop would: if it fails, what it
        // still serves moves now (the close fence holds its FINs meanwhile).
        let deadline = Monotonic.nanos() &+ UInt64(drainTimeout * 1e9)
        var left = pinned
        var detector = HeartbeatDetector(policy: config.health)
        detector.reset(atMillis: Int(Monotonic.nanos() / 1_000_000))
        var moved = 0
        while left > 0, Monotonic.nanos() < deadline {
            usleep(20_000)
            left = relay.connectionsDraining
            moved = Int(relay.counters.movedAtBoundary - movedBefore)
            update {
                $0.connectionsLeft = left
                $0.movedAtBoundary = moved
            }
            let now = Int(Monotonic.nanos() / 1_000_000)
            let stalled = detector.observe(old.channel.heartbeat, atMillis: now).map {
                FailureCause.heartbeatStalled(millis: $0)
            }
            if let cause = Self.cause(from: old.channel) ?? stalled ?? domainStateCause(old.domain) {
                update { $0.oldPrimaryFailure = "\(cause)" }
                logger.warning(
                    "upgrade: the old primary failed during the drain; moving its connections now",
                    metadata: ["cause": "\(cause)"])
                break
            }
        }
        timer.mark("drain", at: Monotonic.nanos())
        moved = Int(relay.counters.movedAtBoundary - movedBefore)
        update {
            $0.drained = pinned - left - moved
            $0.movedAtBoundary = moved
            $0.step = .moving
        }

        // 4. Move the rest: cut the old guest off, fence it, replay what it still served.
        relay.endDrain()
        fence(old.domain)
        let replayStart = Monotonic.nanos()
        relay.beginReplay(pinnedOnly: true)
        let summary = left > 0 ? awaitReplay(startedAfter: replayStart, timer: &timer) : nil
        timer.mark("move", at: Monotonic.nanos())
        update { record in
            record.replay = summary
            record.replayed = summary?.spliced ?? 0
            record.reset = summary?.reset ?? 0
            record.errors += summary?.resets ?? []
            record.connectionsLeft = summary?.pending ?? 0
            record.step = .retiring
        }

        // 5. Retire the old guests, then protect the pair again from the new image.
        let oldBackup = state.withLock { $0.backup }
        setRole(.primary, of: fresh.domain)
        setRole(.retired, of: old.domain)
        remove(old.domain)
        if let oldBackup { remove(oldBackup.domain) }
        state.withLock { state in
            state.source = .image(image)
            state.phase = .unprotected
        }
        timer.mark("retire", at: Monotonic.nanos())
        update { $0.step = .reprotecting }
        do {
            _ = try bootPausedBackup()
            state.withLock { $0.phase = .protected }
            timer.mark("re-protect", at: Monotonic.nanos())
        } catch {
            update { $0.errors.append("re-protection failed, the pair runs unprotected: \(error)") }
            logger.error("upgrade: re-protection failed", metadata: ["error": "\(error)"])
        }
        let total = PhaseTimer.millis(Monotonic.nanos() &- start)
        update { record in
            record.phases = timer.phases
            record.totalMillis = total
            record.step = .done
        }
        logger.notice(
            "upgrade done",
            metadata: [
                "version": "\(image.version)", "primary": "\(fresh.domain)", "ms": "\(total)",
                "drained": "\(pinned - left - moved)", "moved at a boundary": "\(moved)",
                "replayed": "\(summary?.spliced ?? 0)",
                "phases": "\(timer.phases.map { "\($0.name)=\($0.millis)ms" })",
            ])
    }

    private func update(_ change: (inout UpgradeRecord) -> Void) {
        state.withLock { state in
            guard var record = state.upgrade else { return }
            change(&record)
            state.upgrade = record
        }
    }
}
