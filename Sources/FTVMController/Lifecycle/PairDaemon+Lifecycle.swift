import FTVMChannel
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

/// The daemon's half of the lifecycle: it feeds `PairLifecycle` what happened and carries out
/// the actions it returns. Whoever reports an event carries out what follows from it, on its
/// own thread (the health loop a takeover, the upgrade's thread its drain, the re-protection
/// thread a new backup); the machine, behind the pair's mutex, makes sure only one of them
/// claims each step.
extension PairDaemon {
    /// The recovery being carried out: its record and its phase timer.
    struct Recovery: Sendable {
        var record: RecoveryRecord
        var timer: PhaseTimer
        /// The serial of the last connection the failed guest had (the replay's are up to it).
        var lastSerial: UInt64?
    }

    /// The upgrade being carried out, beside its record (`State.upgrade`).
    struct UpgradeRun: Sendable {
        var source: GuestSource
        var drainTimeout: Double
        var readyTimeout: Double
        var timer: PhaseTimer
        var start: UInt64
        var movedBefore: UInt64 = 0
    }

    /// Feeds `event` to the lifecycle and carries out the actions, then those of any event an
    /// action reported, in order. Returns the lifecycle's refusal, if it refused.
    @discardableResult
    func feed(_ event: PairLifecycle.Event, detectedAt: UInt64? = nil) -> String? {
        var queue = [event]
        var refusal: String?
        while !queue.isEmpty {
            let next = queue.removeFirst()
            let now = Monotonic.nanos()
            let (actions, reprotection) = state.withLock { state in
                let actions = state.lifecycle.handle(next)
                return (actions, actions.contains(.markReprotected) ? state.markReprotected(at: now) : nil)
            }
            if let reprotection { report(reprotection) }
            if case .recovery = reprotection { fileRecoveries() }
            for action in actions {
                if case .refuse(let why) = action {
                    refusal = why
                } else if let reported = perform(action, detectedAt: detectedAt) {
                    queue.append(reported)
                }
            }
        }
        return refusal
    }

    /// Carries out one action; returns the event it reports, if any.
    private func perform(_ action: PairLifecycle.Action, detectedAt: UInt64?) -> PairLifecycle.Event? {
        switch action {
        case .beginRecovery(let cause, let failed, let successor):
            beginRecovery(
                cause: cause, failed: failed, successor: successor, detectedAt: detectedAt ?? Monotonic.nanos())
        case .cutOff:
            relay.suspect()
        case .fence(let domain):
            if let domain { fence(domain) }
            mark(.fence)
        case .connect(let domain):
            guard let guest = guest(domain) else { return .successorFailed(domain: domain, reason: "it is gone") }
            relay.connect(guestPort: guest.link)
            mark(.switch)
            guest.channel.hostClockNanos = Monotonic.wallNanos()
        case .resume(let domain):
            return resume(domain)
        case .bootSuccessor:
            return bootSuccessor()
        case .replay(let domain, let pinnedOnly):
            guard let guest = guest(domain) else { return .replaySettled }
            if case .upgrading = state.withLock({ $0.lifecycle.state }) {
                move(into: guest, pinnedOnly: pinnedOnly)
            } else {
                replay(into: guest)
            }
            return .replaySettled
        case .setRole(let role, let domain):
            setRole(role, of: domain)
        case .finishRecovery:
            finishRecovery()
        case .bootBackup:
            startReprotection()
        case .pauseBackup(let domain):
            repause(domain)
        case .remove(let domain):
            remove(domain)
        case .markReprotected:
            break  // done with the state change, in `feed`
        case .recordReprotectionFailure(let reason):
            logger.error("re-protection failed; the pair runs unprotected", metadata: ["error": "\(reason)"])
            state.withLock { state in
                if state.upgrade?.step == .reprotecting, let run = state.upgradeRun {
                    state.upgrade?.errors.append("re-protection failed, the pair runs unprotected: \(reason)")
                    state.upgrade?.totalMillis = PhaseTimer.millis(Monotonic.nanos() &- run.start)
                    state.upgrade?.step = .done
                    state.upgradeRun = nil
                } else if state.recovery != nil {
                    // The recovery stays open: a later backup marks it re-protected, late.
                    let notes = state.lastRecovery?.notes ?? []
                    state.lastRecovery?.notes = notes + ["a backup failed: \(reason.prefix { $0 != "\n" })"]
                }
            }
            fileRecoveries()
        case .retryReprotection(let seconds):
            retryReprotection(afterSeconds: seconds)
        case .bootUpgradeGuest:
            startUpgradeGuest()
        case .beginDrain(let domain):
            if let guest = guest(domain) { beginDrain(to: guest) }
        case .endDrain:
            endDrain()
        case .adoptUpgradeSource:
            adoptUpgradeSource()
            if FileManager.default.fileExists(atPath: config.upgradingDefinitionPath) {
                try? FileManager.default.removeItem(atPath: config.upgradedDefinitionPath)
                try? FileManager.default.moveItem(
                    atPath: config.upgradingDefinitionPath, toPath: config.upgradedDefinitionPath)
            }
        case .abandonUpgrade(let why):
            logger.error("upgrade abandoned", metadata: ["why": "\(why)"])
            try? FileManager.default.removeItem(atPath: config.upgradingDefinitionPath)
            state.withLock { state in
                state.upgrade?.step = .failed
                state.upgrade?.errors.append(why)
                if let run = state.upgradeRun {
                    state.upgrade?.totalMillis = PhaseTimer.millis(Monotonic.nanos() &- run.start)
                }
                state.upgradeRun = nil
            }
        case .reportUnprotectedFailure(let cause):
            logger.error("primary failed while no backup is ready", metadata: ["cause": "\(cause)"])
        case .refuse:
            break
        case .tearDown:
            removeEverything()
        }
        return nil
    }

    /// The guest named `domain`, if the pair still has it.
    func guest(_ domain: String) -> Guest? {
        state.withLock { state in state.guests.first { $0.domain == domain } }
    }

    /// Marks `phase` on the upgrade's timer while one runs, on the recovery's otherwise.
    private func mark(_ phase: RecoveryPhase, at nanos: UInt64 = Monotonic.nanos()) {
        state.withLock { state in
            if state.upgradeRun != nil, case .upgrading = state.lifecycle.state {
                state.upgradeRun?.timer.mark(phase, at: nanos)
            } else {
                state.recovery?.timer.mark(phase, at: nanos)
            }
        }
    }

    private func repause(_ domain: String) {
        state.withLock { $0.handled.backupsRepaused += 1 }
        logger.warning(
            "backup resumed outside ftvm: pausing it again (the relay never forwarded its frames)",
            metadata: ["domain": "\(domain)"])
        do {
            try virt.domain(named: domain).suspend()
        } catch {
            logger.error("cannot pause the backup again", metadata: ["error": "\(error)"])
        }
    }

    /// Boots and pauses a backup on a thread of its own and reports how it went.
    private func startReprotection() {
        let thread = Thread { [self] in
            var launched: String?
            do {
                // Boots and pauses a backup from the pair's current image.
                let backup = try launch(role: .backup)
                launched = backup.domain
                try waitUntilReady(backup)
                try virt.domain(named: backup.domain).suspend()
                feed(.backupReady(backup.domain))
            } catch PairError.stopping {
                logger.info("re-protection stopped: the pair is being taken down")
            } catch {
                feed(.backupFailed(domain: launched, reason: "\(error)"))
            }
        }
        thread.name = "ftvm-reprotect"
        thread.start()
    }

    /// Reports `reprotectionDue` after `seconds` (unless the pair is taken down first).
    private func retryReprotection(afterSeconds seconds: Int) {
        logger.notice("re-protection will be tried again", metadata: ["in-s": "\(seconds)"])
        let thread = Thread { [self] in
            let until = Monotonic.nanos() &+ UInt64(seconds) * 1_000_000_000
            while Monotonic.nanos() < until {
                if done.withLock({ $0 }) { return }
                usleep(100_000)
            }
            feed(.reprotectionDue)
        }
        thread.name = "ftvm-reprotect-retry"
        thread.start()
    }

    /// Logs what a re-protection completed.
    private func report(_ reprotection: State.Reprotection) {
        switch reprotection {
        case .recovery(let phase):
            if let phase { metrics.record(phases: [phase]) }
        case .upgrade(let upgrade):
            logger.notice(
                "upgrade done",
                metadata: [
                    "version": "\(upgrade.toVersion)", "primary": "\(upgrade.newPrimary ?? "")",
                    "ms": "\(upgrade.totalMillis ?? 0)", "drained": "\(upgrade.drained)",
                    "moved at a boundary": "\(upgrade.movedAtBoundary)", "replayed": "\(upgrade.replayed)",
                    "phases": "\(upgrade.phases.map { "\($0.name)=\($0.millis)ms" })",
                ])
        }
        logger.notice("pair protected again", metadata: ["backup": "\(state.withLock { $0.backup?.domain ?? "" })"])
    }
}

extension PairDaemon.State {
    /// What a re-protection completed: a recovery (its last phase, for the metrics) or an upgrade.
    enum Reprotection {
        case recovery(RecoveryRecord.Phase?)
        case upgrade(UpgradeRecord)
    }

    /// Marks "re-protected" on the upgrade or recovery that waited for a backup.
    mutating func markReprotected(at now: UInt64) -> Reprotection {
        if var run = upgradeRun, upgrade?.step == .reprotecting, var record = upgrade {
            run.timer.mark(.reprotected, at: now)
            record.phases = run.timer.phases
            record.totalMillis = PhaseTimer.millis(now &- run.start)
            record.step = .done
            upgrade = record
            upgradeRun = nil
            return .upgrade(record)
        }
        guard var current = recovery, var record = lastRecovery, !record.reprotected else { return .recovery(nil) }
        current.timer.mark(.reprotected, at: now)
        record.reprotected = true
        record.phases = current.timer.phases
        lastRecovery = record
        recovery = nil
        return .recovery(record.phases.last)
    }
}
