import FTVMChannel
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

extension PairDaemon {
    /// Hands the service from the failed (or retiring) primary to the paused backup, timing
    /// each phase, then starts re-protection in the background.
    ///
    /// Order matters (DESIGN.md invariants 2 and 3): the relay stops listening to the primary
    /// before anything else, so no FIN or RST from a dying service reaches a client; the primary
    /// is paused or destroyed before the backup runs; only then is the backup connected.
    func takeOver(cause: FailureCause, detectedAt: UInt64) {
        let claimed = state.withLock { state -> (Guest, Guest?, Injection?)? in
            // One takeover at a time: the health loop and `ftvm failover` may race here.
            guard state.phase == .protected || state.phase == .unprotected, let primary = state.primary else {
                return nil
            }
            if state.backup != nil { state.phase = .failingOver }
            return (primary, state.backup, state.lastInjection)
        }
        guard let (primary, backup, injection) = claimed else { return }
        metrics.recordFailure(cause)
        var record = RecoveryRecord(
            cause: cause.description, failedDomain: primary.domain, newPrimary: backup?.domain ?? "",
            startedAt: ISO8601DateFormatter().string(from: Date()))
        if let injection, injection.domain == primary.domain {
            record.injectedFault = injection.fault.rawValue
            record.detectMillis = PhaseTimer.millis(detectedAt &- injection.atNanos)
            metrics.recordDetection(fault: injection.fault.rawValue, millis: record.detectMillis ?? 0)
        }
        guard let backup else {
            record.error = "no backup was ready: the primary stays as it is until one is"
            logger.error(
                "primary failed while unprotected", metadata: ["domain": "\(primary.domain)", "cause": "\(cause)"])
            finish(record)
            return
        }

        var timer = PhaseTimer(start: detectedAt)
        relay.suspect()
        if case .qemuDied = cause {
            // Nothing left to stop, and libvirt is busy cleaning up after the dead QEMU (a
            // state query would wait over a second for it).
        } else {
            fence(primary.domain)
        }
        timer.mark("fence", at: Monotonic.nanos())

        relay.connect(guestPort: backup.guestPort)
        timer.mark("switch", at: Monotonic.nanos())

        backup.channel.hostClockNanos = Monotonic.wallNanos()
        do {
            try virt.domain(named: backup.domain).resume()
        } catch {
            record.error = "cannot resume backup \(backup.domain): \(error)"
            logger.error("takeover failed", metadata: ["error": "\(error)"])
        }
        timer.mark("resume", at: Monotonic.nanos())
        backup.channel.post(.resync)
        relay.watch(backup.channel, port: backup.guestPort)
        relay.beginReplay()

        if let firstFrame = relay.waitForFirstFrame(timeoutMillis: 5000) {
            timer.mark("first-packet", at: firstFrame)
        } else {
            record.error = record.error ?? "the backup sent nothing within 5 s of its resume"
        }
        record.replay = awaitReplay(startedAfter: detectedAt, timer: &timer)
        record.phases = timer.phases
        metrics.record(phases: record.phases)

        setRole(.primary, of: backup.domain)
        setRole(.retired, of: primary.domain)
        state.withLock { $0.phase = .unprotected }
        finish(record)
        logger.notice(
            "takeover done",
            metadata: [
                "cause": "\(cause)", "new-primary": "\(backup.domain)",
                "phases": "\(record.phases.map { "\($0.name)=\($0.millis)ms" })",
            ])

        let thread = Thread { [self] in reprotect(retiring: primary.domain, detectedAt: detectedAt) }
        thread.name = "ftvm-reprotect"
        thread.start()
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
        let events = [("replay", report.lastSplicedNanos), ("first-byte", report.firstByteNanos)]
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
                ])
        }
        logger.notice(
            "replay done",
            metadata: [
                "connections": "\(report.connections)", "spliced": "\(report.spliced)",
                "reset": "\(report.reset)", "pending": "\(report.pending)",
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

    /// Boots a backup from the pair's current image, waits for its agent, and pauses it.
    func bootPausedBackup() throws -> Guest {
        let backup = try launch(role: .backup)
        try waitUntilReady(backup)
        try virt.domain(named: backup.domain).suspend()
        return backup
    }

    /// Boots and pauses a fresh backup, then retires the old primary (if any).
    func reprotect(retiring: String?, detectedAt: UInt64) {
        do {
            let fresh = try bootPausedBackup()
            if let retiring { remove(retiring) }
            let at = Monotonic.nanos()
            let (protected, phase) = state.withLock { state -> (Bool, RecoveryRecord.Phase?) in
                guard state.phase == .unprotected else { return (false, nil) }
                state.phase = .protected
                guard var record = state.lastRecovery, !record.reprotected else { return (true, nil) }
                record.reprotected = true
                var timer = PhaseTimer(start: detectedAt, resumingAfter: record.phases)
                timer.mark("re-protected", at: at)
                record.phases = timer.phases
                state.lastRecovery = record
                return (true, record.phases.last)
            }
            if let phase { metrics.record(phases: [phase]) }
            if protected { logger.notice("pair protected again", metadata: ["backup": "\(fresh.domain)"]) }
        } catch PairError.stopping {
            logger.info("re-protection stopped: the pair is being taken down")
        } catch {
            logger.error("re-protection failed; the pair runs unprotected", metadata: ["error": "\(error)"])
            state.withLock { $0.lastRecovery?.error = "re-protection failed: \(error)" }
        }
    }

    private func finish(_ record: RecoveryRecord) {
        state.withLock { state in
            state.recoveries += 1
            state.lastRecovery = record
            state.lastInjection = nil
        }
    }
}
