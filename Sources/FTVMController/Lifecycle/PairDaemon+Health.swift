import FTVMChannel
import FTVMDataPlane
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

extension PairDaemon {
    /// The health loop: every few milliseconds it looks at the watched primary's libvirt events
    /// and service reports, samples its heartbeat against the policy, and reconciles the paused
    /// backup with libvirt, in every state of the lifecycle (during an upgrade's drain the
    /// primary judged is the old one). A failure is fed to the lifecycle, and a takeover it
    /// starts runs on this thread. Returns when the pair is torn down.
    func monitor() {
        var detector = HeartbeatDetector(policy: config.health)
        var probeGate = StarvedProbeGate(policy: config.health)
        var dataPath = DataPathClock(policy: config.health)
        var watched = ""
        var lastStateCheck = 0
        var qemu: ProcessWatch?
        // How long the primary's QEMU could not run: the heartbeat is judged in the rest.
        var starvation: VCPUStarvation?
        // The heartbeat last seen: while it stands still, `starvation` sums what QEMU's
        // threads did (`VCPUStarvation.spell`), for the log line of a stall.
        var lastBeat: UInt64?
        // When the primary was seen paused by a SUSPENDED event: a panicking guest is paused
        // first and reported CRASHED just after, so a pause is judged a little later.
        var pausedSeenAt: Int?
        // Each service's restart count when this loop first saw it on the watched primary.
        var restartsSeen: [String: UInt32] = [:]
        let loopMicros = useconds_t(max(5, min(20, config.health.tickMillis / 5)) * 1000)
        while !done.withLock({ $0 }) {
            usleep(loopMicros)
            let nanos = Monotonic.nanos()
            let now = Int(nanos / 1_000_000)
            let (lifecycle, guests, events) = state.withLock { state in
                defer { state.events.removeAll() }
                return (state.lifecycle, state.guests, state.events)
            }
            heartbeats.observe(guests.map { ($0.domain, $0.channel.heartbeat) }, now: Monotonic.nanos())
            guard let name = lifecycle.watchedPrimary, let primary = guests.first(where: { $0.domain == name }) else {
                continue
            }
            // Events can be missed (a libvirtd restart); the domains' states cannot.
            let checkStates = now - lastStateCheck >= 500
            if checkStates { lastStateCheck = now }
            if let name = lifecycle.watchedBackup, checkStates || events.contains(where: { $0.domain == name }) {
                reconcile(backup: name)
            }
            if primary.domain != watched {
                watched = primary.domain
                pausedSeenAt = nil
                restartsSeen = [:]
                detector.reset(atMillis: now)
                probeGate.reset(atMillis: now)
                let pid = try? virt.domain(named: primary.domain).qemuProcessID()
                qemu = pid.flatMap { try? ProcessWatch(pid: $0) }
                starvation = pid.map { VCPUStarvation(pid: $0, now: nanos) }
            }
            let starved = starvation?.starvedMillis(now: nanos) ?? 0
            let beat = primary.channel.heartbeat
            if beat != lastBeat {
                lastBeat = beat
                starvation?.beginSpell()
            }
            probeGate.note(starvedMillis: starved, atMillis: now)
            var cause =
                Self.cause(from: events, for: primary.domain)
                ?? Self.cause(from: primary.channel, restartsSeen: &restartsSeen)
            let held = probeGate.reportsHeld
            if case .serviceHung = cause, !probeGate.stands(hung: true, atMillis: now) {
                if probeGate.reportsHeld > held {
                    logger.warning(
                        "service probe failed while the primary's QEMU could not run (starved or stopped): not a failure yet",
                        metadata: [
                            "domain": "\(primary.domain)", "starved-share": "\(Int(probeGate.starvedShare * 100)) %",
                        ])
                }
                cause = nil
            } else if cause == nil {
                _ = probeGate.stands(hung: false, atMillis: now)
            }
            if cause == nil, Self.paused(in: events, for: primary.domain) { pausedSeenAt = pausedSeenAt ?? now }
            if cause == nil, let seen = pausedSeenAt, now - seen >= 100 {
                pausedSeenAt = nil
                cause = domainStateCause(primary.domain)
            }
            if cause == nil, let qemu, qemu.hasExited {
                cause = .qemuDied(reason: "process \(qemu.pid) exited")
            }
            if cause == nil {
                let forgiven = detector.stallsForgiven
                var qemuSpell: String { starvation.map { "\($0.spell)" } ?? "not measured" }
                if let still = detector.observe(beat, atMillis: now, starvedMillis: starved) {
                    cause = .heartbeatStalled(millis: still)
                    logger.warning(
                        "heartbeat still while the primary's QEMU could run",
                        metadata: [
                            "domain": "\(primary.domain)", "still-ms": "\(still)", "qemu": "\(qemuSpell)",
                        ])
                } else if detector.stallsForgiven > forgiven {
                    heartbeatStallsForgiven.store(detector.stallsForgiven, ordering: .relaxed)
                    logger.warning(
                        "heartbeat late while the primary's QEMU could not run (starved or stopped): not a failure",
                        metadata: ["domain": "\(primary.domain)", "qemu": "\(qemuSpell)"])
                }
            }
            // During an upgrade's drain the relay's active guest is the new one, so the data
            // path's clock says nothing about the old primary.
            // (Judged in the time the primary's QEMU could run, as the heartbeat is.)
            let forgivenSpells = dataPath.stallsForgiven
            let unanswered = lifecycle.phase == .upgrading ? nil : relay.southSide?.unansweredSince()
            if let waiting = dataPath.observe(unansweredSince: unanswered, now: nanos, starvedMillis: starved),
                cause == nil, now >= detector.graceEndsMillis
            {
                cause = .dataPathStalled(millis: waiting)
            } else if dataPath.stallsForgiven > forgivenSpells {
                logger.warning(
                    "client segments unanswered while the primary's QEMU could not run (starved or stopped): not a failure",
                    metadata: ["domain": "\(primary.domain)"])
            }
            if cause == nil, checkStates {
                cause = domainStateCause(primary.domain)
            }
            guard let cause else { continue }
            // While no backup is ready the lifecycle only reports it: the cause persists (the
            // domain state, the still counter), so the takeover happens once a backup is ready.
            feed(.failureDetected(domain: primary.domain, cause: cause), detectedAt: Monotonic.nanos())
        }
    }

    /// A failure libvirt reported for `domain`, if any.
    static func cause(from events: [(domain: String, event: LifecycleEvent)], for domain: String) -> FailureCause? {
        for (name, event) in events where name == domain {
            switch event {
            case .crashed: return .kernelPanic
            case .stopped(let why): return .qemuDied(reason: "\(why)")
            case .shutdown: return .qemuDied(reason: "guest shut down")
            default: continue
            }
        }
        return nil
    }

    /// Whether `domain` was paused. Only someone else pauses a primary (ftvm fences it only
    /// after a takeover claimed the pair, and this loop drops the events of that time), but a
    /// guest that panics is paused too, just before it is reported crashed.
    static func paused(in events: [(domain: String, event: LifecycleEvent)], for domain: String) -> Bool {
        events.contains { name, event in
            if name == domain, case .suspended = event { true } else { false }
        }
    }

    /// A failure the primary's agent reported, if any. A service whose restart count moved since
    /// `restartsSeen` (first sight of each) crashed too: the agent restarts a crashed service
    /// after 500 ms, and a loop held up that long (a libvirt call that waits on a dying QEMU)
    /// never saw it exited.
    static func cause(from channel: Channel, restartsSeen: inout [String: UInt32]) -> FailureCause? {
        if channel.agentState == .failed { return .agentFailed }
        for service in channel.services {
            switch service.state {
            case .exited: return .serviceFailed(name: service.name, exit: service.lastExit)
            case .hung: return .serviceHung(name: service.name)
            case .unused, .starting, .running: break
            }
            let seen = restartsSeen[service.name, default: service.restarts]
            restartsSeen[service.name] = seen
            if service.restarts != seen { return .serviceFailed(name: service.name, exit: service.lastExit) }
        }
        return nil
    }

    func domainStateCause(_ domain: String) -> FailureCause? {
        guard let current = try? virt.domain(named: domain).state() else { return .qemuDied(reason: "domain gone") }
        switch current {
        case .crashed: return .kernelPanic
        case .shutoff: return .qemuDied(reason: "\(current)")
        case .paused(let reason):
            // VIR_DOMAIN_PAUSED_USER is 1 and _CRASHED 9; the others are QEMU's own (I/O
            // error, watchdog, …).
            if reason == 9 { return .kernelPanic }
            return .pausedOutside(how: reason == 1 ? "virsh suspend" : "libvirt paused reason \(reason)")
        default: return nil
        }
    }
}
