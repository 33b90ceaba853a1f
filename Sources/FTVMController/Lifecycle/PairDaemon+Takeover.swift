import FTVMChannel
import FTVMDataPlane
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

extension PairDaemon {
    // The takeover's steps, in the order `PairLifecycle` asks for them: cut off and fence the
    // failed primary, connect and resume the successor (or boot one), replay, and only then
    // change roles in libvirt, retire, and boot a new backup (DESIGN.md invariants 2 and 3).

    /// Opens the recovery's record and timer.
    func beginRecovery(cause: FailureCause, failed: String?, successor: String?, detectedAt: UInt64) {
        logger.warning("primary failed", metadata: ["domain": "\(failed ?? "(none)")", "cause": "\(cause)"])
        metrics.recordFailure(cause)
        var record = RecoveryRecord(
            cause: cause.description, failedDomain: failed ?? "(none)", newPrimary: successor ?? "",
            startedAt: ISO8601DateFormatter().string(from: Date()))
        let injection = state.withLock { state in
            defer { state.recoveryNotes = [] }
            record.notes = state.recoveryNotes.isEmpty ? nil : state.recoveryNotes
            return state.lastInjection
        }
        if let injection, injection.domain == failed {
            record.injectedFault = injection.fault.rawValue
            record.detectMillis = PhaseTimer.millis(detectedAt &- injection.atNanos)
            metrics.recordDetection(fault: injection.fault.rawValue, millis: record.detectMillis ?? 0)
        }
        // The failed guest's connections are those logged before the cut-off; a takeover a
        // killed daemon began keeps its count, for the successor has opened its own since.
        let lastSerial = recorded(of: failed)?.lastSerial ?? relay.southSide?.log.usage.counters.connectionsOpened
        state.withLock {
            $0.recovery = Recovery(record: record, timer: PhaseTimer(start: detectedAt), lastSerial: lastSerial)
        }
        // A few microseconds on tmpfs: the next daemon names the cause if this one dies.
        if let data = try? JSONEncoder().encode(RecordedCause(failed: failed, cause: cause, lastSerial: lastSerial)) {
            try? data.write(to: URL(fileURLWithPath: config.recoveryCausePath))
        }
    }

    /// What `ftvm status` says of the recoveries so far, as `filedRecoveriesPath` keeps it.
    struct FiledRecoveries: Codable {
        var count: Int
        var last: RecoveryRecord?
    }

    /// Keeps the recoveries filed so far where a restarted daemon finds them (a few microseconds
    /// on tmpfs, after each change): its status must not forget a takeover the dead one finished.
    func fileRecoveries() {
        let filed = state.withLock { FiledRecoveries(count: $0.recoveries, last: $0.lastRecovery) }
        if let data = try? JSONEncoder().encode(filed) {
            try? data.write(to: URL(fileURLWithPath: config.filedRecoveriesPath), options: .atomic)
        }
    }

    /// The recoveries a previous daemon of this pair filed, taken up on adoption.
    func takeUpFiledRecoveries() {
        guard let data = FileManager.default.contents(atPath: config.filedRecoveriesPath),
            let filed = try? JSONDecoder().decode(FiledRecoveries.self, from: data)
        else { return }
        state.withLock { state in
            state.recoveries = filed.count
            state.lastRecovery = filed.last
            if var last = filed.last, !last.reprotected {
                last.notes = (last.notes ?? []) + ["its daemon died before the pair was protected again"]
                state.lastRecovery = last
            }
        }
    }

    /// The takeover under way, as `recoveryCausePath` keeps it: the failed guest, the cause, and
    /// the serial of the last connection logged before the cut-off.
    struct RecordedCause: Codable {
        var failed: String?
        var cause: FailureCause
        var lastSerial: UInt64?
    }

    /// What a killed daemon recorded about the takeover it began, if it was about `failed`.
    func recordedCause(of failed: String?) -> FailureCause? { recorded(of: failed)?.cause }

    private func recorded(of failed: String?) -> RecordedCause? {
        guard let data = FileManager.default.contents(atPath: config.recoveryCausePath),
            let recorded = try? JSONDecoder().decode(RecordedCause.self, from: data), recorded.failed == failed
        else { return nil }
        return recorded
    }

    /// Runs the paused successor; a daemon killed just after resuming it left it running.
    func resume(_ domain: String) -> PairLifecycle.Event {
        do {
            let found = try virt.domain(named: domain)
            switch try found.state() {
            case .running: break
            default: try found.resume()
            }
            markRecovery(.resume)
            return .successorRunning(domain)
        } catch {
            relay.connect(guestPort: nil)
            updateRecovery { $0.notes = ($0.notes ?? []) + ["backup \(domain) could not run (\(error))"] }
            logger.error("the backup cannot run; booting a fresh guest", metadata: ["error": "\(error)"])
            return .successorFailed(domain: domain, reason: "\(error)")
        }
    }

    /// Boots a fresh guest to take over (there was no backup, or it could not run) and
    /// connects it.
    func bootSuccessor() -> PairLifecycle.Event {
        do {
            let fresh = try launch(role: .backup)
            try waitUntilReady(fresh)
            relay.connect(guestPort: fresh.link)
            markRecovery(.boot)
            updateRecovery {
                $0.newPrimary = fresh.domain
                $0.notes = ($0.notes ?? []) + ["served by \(fresh.domain), booted fresh"]
            }
            state.withLock { $0.handled.freshPrimaries += 1 }
            return .successorRunning(fresh.domain)
        } catch {
            updateRecovery { $0.error = "no guest could take over: \(error)" }
            logger.error("takeover failed: no guest could take over", metadata: ["error": "\(error)"])
            return .successorFailed(domain: nil, reason: "\(error)")
        }
    }

    /// Replays every open connection into the successor, which runs now, and times it.
    func replay(into successor: Guest) {
        successor.channel.post(.resync)
        relay.watch(successor.channel, port: successor.link)
        // Only the failed guest's connections: after a daemon killed mid-takeover, the successor
        // already opened connections of its own (a proxy's, re-sending replayed requests), which
        // are its, not the failed guest's to open again.
        relay.beginReplay(upToSerial: state.withLock { $0.recovery?.lastSerial } ?? .max)
        let firstFrame = relay.waitForFirstFrame(timeoutMillis: 5000)
        if firstFrame == nil {
            updateRecovery { $0.error = $0.error ?? "\(successor.domain) sent nothing within 5 s of taking over" }
        }
        let summary = state.withLock { state -> (UInt64, PhaseTimer)? in
            guard let recovery = state.recovery else { return nil }
            return (recovery.timer.start, recovery.timer)
        }
        guard let (start, before) = summary else { return }
        var timer = before
        // The clients' first frame for the service: the relay's announcement, or the guest's own
        // if that came first. The guest's own is checked above and logged here.
        if let first = [relay.announcedAt, firstFrame].compactMap({ $0 }).min() { timer.mark(.firstPacket, at: first) }
        if let firstFrame {
            let millis = Double(firstFrame &- start) / 1e6
            logger.info("the new guest's own first frame", metadata: ["ms-since-detection": "\(millis)"])
        }
        let replay = awaitReplay(startedAfter: start, timer: &timer)
        state.withLock {
            $0.recovery?.timer = timer
            $0.recovery?.record.replay = replay
            $0.recovery?.record.newPrimary = successor.domain
        }
    }

    /// Files the recovery (`ftvm status`, metrics); re-protection adds its last phase.
    func finishRecovery() {
        let filed = state.withLock { state -> (RecoveryRecord, UInt64)? in
            guard var recovery = state.recovery else { return nil }
            recovery.record.phases = recovery.timer.phases
            state.recovery = recovery
            state.recoveries += 1
            state.lastRecovery = recovery.record
            state.lastInjection = nil
            return (recovery.record, recovery.timer.start)
        }
        try? FileManager.default.removeItem(atPath: config.recoveryCausePath)
        fileRecoveries()
        guard let (record, start) = filed else { return }
        if let replay = record.replay, replay.pending > 0, let report = relay.replayReport {
            followLateReplay(of: record, startedAt: report.startedNanos, since: start)
        }
        metrics.record(phases: record.phases)
        logger.notice(
            "takeover done",
            metadata: [
                "cause": "\(record.cause)", "new-primary": "\(record.newPrimary)",
                "phases": "\(record.phases.map { "\($0.name)=\($0.millis)ms" })",
            ])
    }

    /// A replay the takeover stopped waiting for (a deep response still regenerating: the
    /// deadline bounds progress, not time) settles later. Its outcome then replaces the one
    /// filed, so `ftvm status` says how it ended, and the log says so too.
    private func followLateReplay(of record: RecoveryRecord, startedAt replayStart: UInt64, since start: UInt64) {
        Thread { [self] in
            while !done.withLock({ $0 }) {
                usleep(100_000)
                // (Another replay began meanwhile: its own takeover files it.)
                guard let report = relay.replayReport, report.startedNanos == replayStart else { return }
                guard report.pending == 0 else { continue }
                let summary = ReplaySummary(report, since: start)
                let current = state.withLock { state -> Bool in
                    guard state.lastRecovery?.startedAt == record.startedAt else { return false }
                    state.lastRecovery?.replay = summary
                    return true
                }
                guard current else { return }
                fileRecoveries()
                logger.notice(
                    "replay done after the takeover was filed",
                    metadata: [
                        "spliced": "\(summary.spliced)", "reset": "\(summary.reset)",
                        "last-spliced-ms": "\(summary.lastSplicedMillis.map { "\($0)" } ?? "-")",
                    ])
                return
            }
        }.start()
    }

    private func markRecovery(_ phase: RecoveryPhase) {
        state.withLock { $0.recovery?.timer.mark(phase, at: Monotonic.nanos()) }
    }

    private func updateRecovery(_ change: (inout RecoveryRecord) -> Void) {
        state.withLock { state in
            guard var recovery = state.recovery else { return }
            change(&recovery.record)
            state.recovery = recovery
        }
    }

    /// Waits for the replay the relay started to settle (every connection spliced or reset, or
    /// its deadline passed), marks the "replay" (last connection spliced) and "first-byte" (the
    /// first payload a spliced connection passed to a client) phases, and logs each connection's timing.
    func awaitReplay(startedAfter start: UInt64, timer: inout PhaseTimer) -> ReplaySummary? {
        var report: ReplayReport?
        for _ in 0..<30_000 {
            report = relay.replayReport
            if let report, report.startedNanos > start, report.enlisted, report.pending == 0 { break }
            usleep(1000)
        }
        // A spliced connection's first new byte follows at once when the client is waiting for
        // one; idle connections have none to send.
        for _ in 0..<1000 where report.map({ $0.spliced > 0 && $0.firstByteNanos == 0 }) == true {
            usleep(1000)
            report = relay.replayReport
        }
        guard let report, report.startedNanos > start else { return nil }
        let events = [(RecoveryPhase.replay, report.lastSplicedNanos), (.firstByte, report.firstByteNanos)]
            .filter { $0.1 > 0 }.sorted { $0.1 < $1.1 }
        for (name, at) in events { timer.mark(name, at: at) }
        let summary = ReplaySummary(report, since: start)
        for connection in report.connectionTimings {
            logger.info(
                "connection replayed",
                metadata: [
                    "connection": "\(connection.connection)",
                    "spliced-ms": "\(connection.splicedMillis)",
                    "regenerated": "\(connection.regeneratedBytes)",
                    "injected": "\(connection.injectedBytes)",
                    "resumed-at": "\(connection.resumedAt.map { "\($0)" } ?? "-")",
                ])
        }
        logger.notice(
            "replay done",
            metadata: [
                "connections": "\(report.connections)", "spliced": "\(report.spliced)",
                "range-resumed": "\(report.rangeResumed)",
                "reset": "\(report.reset)", "pending": "\(report.pending)",
                "awaiting-reopen": "\(report.awaitingReopen)",
                "last-spliced-ms": "\(summary.lastSplicedMillis.map { "\($0)" } ?? "-")",
                "first-byte-ms": "\(summary.firstByteMillis.map { "\($0)" } ?? "-")",
            ])
        for reason in report.resets { logger.warning("replay reset", metadata: ["why": "\(reason)"]) }
        return summary
    }

    /// Stops the suspected primary from running: paused (kept for inspection until the pair is
    /// protected again) or destroyed, per the fence policy. A guest whose QEMU is already gone,
    /// or that panicked (its vCPUs are stopped), needs nothing more.
    func fence(_ domain: String) {
        guard let found = try? virt.domain(named: domain), let current = try? found.state() else { return }
        do {
            switch (config.fence, current) {
            case (_, .shutoff):
                return
            case (.destroy, _):
                try found.destroy()
            case (.pause, .running):
                try found.suspend()
            case (.pause, _):
                return
            }
        } catch {
            // A primary that is still running after this would break invariant 2: destroy it.
            logger.error("fence failed; destroying", metadata: ["domain": "\(domain)", "error": "\(error)"])
            try? found.destroy()
        }
    }
}
