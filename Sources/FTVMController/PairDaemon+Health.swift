import FTVMChannel
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

extension PairDaemon {
    /// The health loop: every few milliseconds it looks at the primary's libvirt events and
    /// service reports, and samples its heartbeat against the policy; on failure it runs the
    /// takeover itself, so two takeovers can never overlap. Returns when the pair is torn down.
    func monitor() {
        var detector = HeartbeatDetector(policy: config.health)
        var watched = ""
        var lastStateCheck = 0
        var reportedUnprotected = ""
        var qemu: ProcessWatch?
        // When the primary was seen paused by a SUSPENDED event: a panicking guest is paused
        // first and reported CRASHED just after, so a pause is judged a little later.
        var pausedSeenAt: Int?
        let loopMicros = useconds_t(max(5, min(20, config.health.tickMillis / 5)) * 1000)
        while !done.withLock({ $0 }) {
            usleep(loopMicros)
            let now = Int(Monotonic.nanos() / 1_000_000)
            let (phase, guests, events, failoverRequested) = state.withLock { state in
                defer {
                    state.events.removeAll()
                    state.failoverRequested = false
                }
                return (state.phase, state.guests, state.events, state.failoverRequested)
            }
            let primary = guests.first { $0.role == .primary }
            let backup = guests.first { $0.role == .backup }
            heartbeats.observe(guests.map { ($0.domain, $0.channel.heartbeat) }, now: Monotonic.nanos())
            guard phase == .protected || phase == .unprotected, let primary else { continue }
            // Takeovers run on this thread only, so a planned one never races the checks below.
            if failoverRequested, phase == .protected {
                takeOver(cause: .manual, detectedAt: Monotonic.nanos())
                continue
            }
            // Events can be missed (a libvirtd restart); the domains' states cannot.
            let checkStates = now - lastStateCheck >= 500
            if checkStates { lastStateCheck = now }
            if phase == .protected, let backup, checkStates || events.contains(where: { $0.domain == backup.domain }) {
                reconcile(backup: backup)
            }
            if primary.domain != watched {
                watched = primary.domain
                pausedSeenAt = nil
                detector.reset(atMillis: now)
                qemu = (try? virt.domain(named: primary.domain).qemuProcessID()).flatMap { try? ProcessWatch(pid: $0) }
            }
            var cause = Self.cause(from: events, for: primary.domain) ?? Self.cause(from: primary.channel)
            if cause == nil, Self.paused(in: events, for: primary.domain) { pausedSeenAt = pausedSeenAt ?? now }
            if cause == nil, let seen = pausedSeenAt, now - seen >= 100 {
                pausedSeenAt = nil
                cause = domainStateCause(primary.domain)
            }
            if cause == nil, let qemu, qemu.hasExited {
                cause = .qemuDied(reason: "process \(qemu.pid) exited")
            }
            if cause == nil, let still = detector.observe(primary.channel.heartbeat, atMillis: now) {
                cause = .heartbeatStalled(millis: still)
            }
            if cause == nil, let waiting = relay.southSide?.unansweredMillis(now: Monotonic.nanos()),
                waiting >= config.health.dataPathStallMillis, now >= detector.graceEndsMillis
            {
                cause = .dataPathStalled(millis: waiting)
            }
            if cause == nil, checkStates {
                cause = domainStateCause(primary.domain)
            }
            guard let cause else { continue }
            let detectedAt = Monotonic.nanos()
            guard phase == .protected else {
                // Nothing to fail over to yet: keep watching; the cause persists (the domain
                // state, the stalled counter), so the takeover happens once a backup is ready.
                if reportedUnprotected != primary.domain {
                    reportedUnprotected = primary.domain
                    logger.error(
                        "primary failed while no backup is ready",
                        metadata: ["domain": "\(primary.domain)", "cause": "\(cause)"])
                }
                continue
            }
            logger.warning("primary failed", metadata: ["domain": "\(primary.domain)", "cause": "\(cause)"])
            takeOver(cause: cause, detectedAt: detectedAt)
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

    /// A failure the primary's agent reported, if any.
    static func cause(from channel: Channel) -> FailureCause? {
        if channel.agentState == .failed { return .agentFailed }
        for service in channel.services {
            switch service.state {
            case .exited: return .serviceFailed(name: service.name, exit: service.lastExit)
            case .hung: return .serviceHung(name: service.name)
            case .unused, .starting, .running: continue
            }
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
