import FTVMChannel
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

extension PairDaemon {
    /// Hands the service from the failed (or retiring) primary to the paused backup, timing
    /// each phase, then starts re-protection in the background. A backup that cannot run (it
    /// vanished, or libvirt cannot resume it) is replaced at once by a guest booted fresh, into
    /// which the open connections are replayed just the same: a takeover never ends with a dead
    /// primary serving nobody.
    ///
    /// Order matters (DESIGN.md invariants 2 and 3): the relay stops listening to the primary
    /// before anything else, so no FIN or RST from a dying service reaches a client; the primary
    /// is paused or destroyed before the backup runs; only then is the backup connected.
    func takeOver(cause: FailureCause, detectedAt: UInt64, notes: [String] = []) {
        let claimed = state.withLock { state -> (Guest?, Guest?, Injection?)? in
            // One takeover at a time (they all run on the health loop; adoption runs before it).
            guard state.phase == .protected || state.phase == .unprotected else { return nil }
            state.phase = .failingOver
            return (state.primary, state.backup, state.lastInjection)
        }
        guard let (primary, backup, injection) = claimed else { return }
        metrics.recordFailure(cause)
        var record = RecoveryRecord(
            cause: cause.description, failedDomain: primary?.domain ?? "(none)", newPrimary: backup?.domain ?? "",
            startedAt: ISO8601DateFormatter().string(from: Date()))
        record.notes = notes.isEmpty ? nil : notes
        if let injection, injection.domain == primary?.domain {
            record.injectedFault = injection.fault.rawValue
            record.detectMillis = PhaseTimer.millis(detectedAt &- injection.atNanos)
            metrics.recordDetection(fault: injection.fault.rawValue, millis: record.detectMillis ?? 0)
        }

        var timer = PhaseTimer(start: detectedAt)
        relay.suspect()
        if let primary {
            if case .qemuDied = cause {
                // Nothing left to stop, and libvirt is busy cleaning up after the dead QEMU (a
                // state query would wait over a second for it).
            } else {
                fence(primary.domain)
            }
            setRole(.retired, of: primary.domain)
        }
        timer.mark("fence", at: Monotonic.nanos())

        guard let successor = runSuccessor(backup, record: &record, timer: &timer) else {
            state.withLock { $0.phase = .unprotected }
            finish(record)
            startReprotection(retiring: primary?.domain, detectedAt: nil)
            return
        }
        successor.channel.post(.resync)
        relay.watch(successor.channel, port: successor.link)
        relay.beginReplay()

        if let firstFrame = relay.waitForFirstFrame(timeoutMillis: 5000) {
            timer.mark("first-packet", at: firstFrame)
        } else {
            record.error = record.error ?? "\(successor.domain) sent nothing within 5 s of taking over"
        }
        record.replay = awaitReplay(startedAfter: detectedAt, timer: &timer)
        record.phases = timer.phases
        metrics.record(phases: record.phases)

        setRole(.primary, of: successor.domain)
        state.withLock {
            $0.phase = .unprotected
            $0.degradedReason = "the backup took over; booting a new backup"
        }
        finish(record)
        logger.notice(
            "takeover done",
            metadata: [
                "cause": "\(cause)", "new-primary": "\(successor.domain)",
                "phases": "\(record.phases.map { "\($0.name)=\($0.millis)ms" })",
            ])
        startReprotection(retiring: primary?.domain, detectedAt: detectedAt)
    }

    /// Connects and runs the guest that takes over: the paused backup, or, when there is none or
    /// it cannot run, a guest booted fresh from the pair's image (phase "boot"). Nil when neither
    /// could be had (recorded in `record.error`).
    private func runSuccessor(_ backup: Guest?, record: inout RecoveryRecord, timer: inout PhaseTimer) -> Guest? {
        if let backup {
            relay.connect(guestPort: backup.link)
            timer.mark("switch", at: Monotonic.nanos())
            backup.channel.hostClockNanos = Monotonic.wallNanos()
            do {
                let domain = try virt.domain(named: backup.domain)
                switch try domain.state() {
                case .running: break  // a daemon killed just after resuming it left it so
                default: try domain.resume()
                }
                timer.mark("resume", at: Monotonic.nanos())
                return backup
            } catch {
                relay.connect(guestPort: nil)
                record.notes = (record.notes ?? []) + ["backup \(backup.domain) could not run (\(error))"]
                logger.error("the backup cannot run; booting a fresh guest", metadata: ["error": "\(error)"])
                remove(backup.domain)
            }
        }
        do {
            let fresh = try launch(role: .primary)
            try waitUntilReady(fresh)
            relay.connect(guestPort: fresh.link)
            timer.mark("boot", at: Monotonic.nanos())
            record.newPrimary = fresh.domain
            record.notes = (record.notes ?? []) + ["served by \(fresh.domain), booted fresh"]
            state.withLock { $0.handled.freshPrimaries += 1 }
            return fresh
        } catch {
            record.error = "no guest could take over: \(error)"
            logger.error("takeover failed: no guest could take over", metadata: ["error": "\(error)"])
            return nil
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

    /// Boots and pauses a fresh backup, then retires the old primary (if any). `detectedAt` names
    /// the recovery this re-protection completes (its "re-protected" phase), if one does.
    func reprotect(retiring: String?, detectedAt: UInt64?) {
        do {
            let fresh = try bootPausedBackup()
            if let retiring { remove(retiring) }
            let at = Monotonic.nanos()
            let (protected, phase) = state.withLock { state -> (Bool, RecoveryRecord.Phase?) in
                guard state.phase == .unprotected else { return (false, nil) }
                state.phase = .protected
                state.degradedReason = nil
                guard let detectedAt, var record = state.lastRecovery, !record.reprotected else { return (true, nil) }
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
