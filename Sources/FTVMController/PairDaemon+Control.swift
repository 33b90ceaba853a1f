import FTVMChannel
import FTVMDataPlane
import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

extension PairDaemon {
    func handle(_ request: ControlRequest) -> ControlResponse {
        switch request {
        case .status:
            return ControlResponse(status: status())
        case .down:
            let status = status()
            tearDown()
            return ControlResponse(status: status)
        case .inject(let fault, let service, let whenProtected):
            if let seconds = whenProtected, let refusal = awaitProtection(seconds: seconds) {
                return refusal
            }
            return inject(fault, service: service)
        case .failover:
            return failover()
        case .upgrade(let target, let drainTimeout, let readyTimeout):
            return upgrade(
                to: target, drainTimeout: max(0, drainTimeout),
                readyTimeout: max(1, readyTimeout ?? config.bootTimeoutSeconds))
        case .connections:
            guard let log = relay.southSide?.log else { return ControlResponse(connections: []) }
            return ControlResponse(
                connections: log.records().map {
                    ConnectionStatus($0, clientBytes: log.clientBytes($0.slot))
                })
        }
    }

    /// `ftvm inject --when-protected`: waits up to `seconds` for a paused backup to be ready, so
    /// the fault tests a failover rather than an outage (a fault while unprotected waits for the
    /// backup). nil once protected; otherwise the refusal, saying why.
    private func awaitProtection(seconds: Double) -> ControlResponse? {
        let deadline = Monotonic.nanos() &+ UInt64(max(0, seconds) * 1e9)
        while true {
            let (phase, reason) = state.withLock { ($0.phase, $0.lifecycle.degradedReason) }
            if phase == .protected { return nil }
            if phase == .stopping || Monotonic.nanos() >= deadline {
                return ControlResponse(
                    error:
                        "not injected: the pair is \(phase.rawValue)\(reason.map { " (\($0))" } ?? "") after waiting \(seconds) s for it to be protected; see `ftvm status`"
                )
            }
            usleep(50_000)
        }
    }

    /// Puts `fault` into the current primary and says exactly when.
    private func inject(_ fault: Fault, service: String?) -> ControlResponse {
        let (phase, primary) = state.withLock { ($0.phase, $0.primary) }
        // During an upgrade the primary is the guest being drained: faults go there.
        guard phase == .protected || phase == .unprotected || phase == .upgrading, let primary else {
            return ControlResponse(
                error: "the pair is \(phase.rawValue); inject when it is protected (see `ftvm status`)")
        }
        var slot: UInt32 = 0
        if fault == .serviceCrash || fault == .serviceHang {
            let services = primary.channel.services
            let wanted = service ?? services.first?.name ?? ""
            guard let index = services.firstIndex(where: { $0.name == wanted }) else {
                return ControlResponse(
                    error:
                        "no service '\(wanted)' in \(primary.domain): it runs \(services.map(\.name).joined(separator: ", "))"
                )
            }
            slot = UInt32(index)
        }
        let at = Monotonic.nanos()
        state.withLock { $0.lastInjection = Injection(fault: fault, domain: primary.domain, atNanos: at) }
        switch fault {
        case .kernelPanic: primary.channel.post(.kernelPanic)
        case .kernelHang: primary.channel.post(.kernelHang)
        case .networkStall: primary.channel.post(.networkDown)
        case .serviceCrash: primary.channel.post(.serviceCrash, argument: slot)
        case .serviceHang: primary.channel.post(.serviceHang, argument: slot)
        case .agentKill: primary.channel.post(.agentExit)
        case .qemuKill:
            guard let pid = try? virt.domain(named: primary.domain).qemuProcessID(), kill(pid, SIGKILL) == 0 else {
                return ControlResponse(error: "cannot find or kill the QEMU process of \(primary.domain)")
            }
        }
        let when = ISO8601DateFormatter.withFractionalSeconds.string(from: Date())
        logger.notice("fault injected", metadata: ["fault": "\(fault.rawValue)", "domain": "\(primary.domain)"])
        return ControlResponse(message: "injected \(fault.rawValue) into \(primary.domain) at \(when)")
    }

    /// A planned switch to the backup, timed like any recovery; answers once it is recorded.
    private func failover() -> ControlResponse {
        if let refusal = feed(.failoverRequested, detectedAt: Monotonic.nanos()) {
            return ControlResponse(error: refusal)
        }
        return ControlResponse(status: status())
    }

    func status() -> PairStatus {
        let snapshot = state.withLock { state in
            (
                state.phase, state.guests, state.recoveries, state.lastRecovery, state.source, state.upgrade,
                state.lifecycle.degradedReason, state.handled
            )
        }
        let ages = heartbeats.ages(now: Monotonic.nanos())
        let guests = snapshot.1.map { guest in
            GuestStatus(
                domain: guest.domain, role: guest.role.rawValue, generation: guest.generation,
                state: (try? virt.domain(named: guest.domain).state())?.word ?? "undefined",
                heartbeat: guest.channel.heartbeat,
                heartbeatAgeMillis: ages[guest.domain].map(PhaseTimer.millis),
                agent: guest.channel.agentState.description,
                imageVersion: guest.channel.imageVersion,
                services: guest.channel.services.map {
                    ServiceStatus(
                        name: $0.name, port: $0.port, state: $0.state.description, pid: $0.pid,
                        restarts: $0.restarts, lastExit: $0.lastExit)
                }, link: GuestLink(id: guest.link).tap)
        }
        return PairStatus(
            name: config.name, phase: snapshot.0.rawValue, protected: snapshot.0 == .protected,
            namespace: network.namespace ?? "", clients: network.location, serviceAddress: config.serviceAddress,
            servicePorts: guests.first?.services.map(\.port) ?? [], accelerator: accelerator.rawValue,
            daemonPID: getpid(), health: config.health, fence: config.fence.rawValue, guests: guests,
            relay: relay.counters,
            log: relay.southSide.map {
                LogStatus(
                    $0.log.usage, connectionBudget: $0.log.connectionBudget,
                    idleReclaimNanos: $0.policy.idleReclaimNanos, wrapper: $0.counters)
            },
            recoveries: snapshot.2, lastRecovery: snapshot.3, imageDirectory: snapshot.4.directory,
            imageVersion: snapshot.4.version, upgrade: snapshot.5,
            degradedReason: snapshot.0 == .unprotected ? snapshot.6 : nil, handled: snapshot.7,
            metricsAddress: metricsServer?.address.description,
            tlsPorts: config.tls.map { $0.ports.map(\.description).joined(separator: ",") },
            tlsPID: terminator.map { _ in TLSTerminator.running(config: config) ?? 0 },
            tlsRestarts: terminator?.restarts,
            tlsInGuestResets: relay.southSide?.splicer.replayTotals.resets[.tlsInGuest],
            relayScheduling: relay.threadScheduling?.description)
    }
}

extension ISO8601DateFormatter {
    /// Injection instants are compared with millisecond timings: print milliseconds.
    static var withFractionalSeconds: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
