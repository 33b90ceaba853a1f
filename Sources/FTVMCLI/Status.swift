import ArgumentParser
import FTVMController
import Foundation

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the pair: guests, roles, heartbeats, protection.",
        discussion: "Exit status: 0 the daemon answered, 3 no daemon runs for the pair, 1 any other failure.")

    /// "Program is not running", as LSB init scripts report it: lets a script (the Pacemaker
    /// agent, contrib/ocf/ftvm) tell a pair that is down from a daemon that does not answer.
    static let notRunningExitCode: Int32 = 3

    @OptionGroup var pair: PairOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        let config = try pair.config()
        let response: ControlResponse
        do {
            response = try ControlClient.send(ControlRequest.status, to: config, timeoutSeconds: 30)
        } catch let error as ControlError {
            guard case .notRunning = error else { throw CommandFailure("\(error)") }
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            throw ExitCode(Self.notRunningExitCode)
        } catch {
            throw CommandFailure("\(error)")
        }
        guard let status = response.status else { throw CommandFailure(response.error ?? "the daemon sent no status") }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
        } else {
            StatusPrinter.print(status)
        }
    }
}

/// The human-readable status.
enum StatusPrinter {
    static func print(_ status: PairStatus) {
        Swift.print(
            "pair \(status.name): \(status.protected ? "protected" : "\(status.phase), NOT protected") (accel \(status.accelerator), daemon pid \(status.daemonPID))"
        )
        if let why = status.degradedReason { Swift.print("  why: \(why)") }
        Swift.print(
            "service \(status.serviceAddress) ports \(status.servicePorts.map(String.init).joined(separator: ",")) (clients: \(status.clients ?? "netns \(status.namespace)"))"
        )
        if let ports = status.tlsPorts {
            let pid = status.tlsPID ?? 0
            let restarts = status.tlsRestarts ?? 0
            let restarted =
                restarts > 0 ? "; found gone and started again \(restarts) times (their TLS sessions were lost)" : ""
            Swift.print(
                "  https \(ports) (PUBLIC:GUEST) terminated on the host by HAProxy \(pid != 0 ? "pid \(pid)" : "NOT RUNNING: HTTPS clients get no answer (see /var/log/ftvm/\(status.name)-haproxy.log)")\(restarted)"
            )
        }
        if let resets = status.tlsInGuestResets, resets > 0 {
            Swift.print(
                "  TLS inside the guest: \(resets) connections reset by failovers (TLS cannot be replayed; serve HTTPS with --tls-port, docs/https.md)"
            )
        }
        for guest in status.guests {
            let services = guest.services.map { "\($0.name):\($0.state)" }.joined(separator: " ")
            Swift.print(
                "  \(guest.domain)  \(guest.role.padding(toLength: 8, withPad: " ", startingAt: 0)) \(guest.state.padding(toLength: 8, withPad: " ", startingAt: 0)) heartbeat \(guest.heartbeat)\(guest.heartbeatAgeMillis.map { " (\(WatchView.age($0)) ago)" } ?? "")  agent \(guest.agent)  image \(guest.imageVersion)\(guest.link.map { "  link \($0)" } ?? "")  \(services)"
            )
        }
        Swift.print("metrics: \(status.metricsAddress.map { "http://\($0)/metrics" } ?? "off")")
        if let version = status.imageVersion, let directory = status.imageDirectory {
            Swift.print("image \(version) (\(directory))")
        }
        Swift.print(
            "relay: \(status.relay.framesToGuest) frames to guest, \(status.relay.framesToClients) to clients, \(status.relay.framesDropped) dropped, \(status.relay.framesHeld) held during takeovers; closes fenced \(status.relay.closesFenced), suppressed \(status.relay.closesSuppressed)"
                + (status.relayScheduling.map { "; thread \($0)" } ?? "")
        )
        if let log = status.log {
            let protected = log.openConnections - log.unprotectedConnections
            Swift.print(
                "connection log: \(log.openConnections)/\(log.slotCount) open (\(protected) protected, \(log.unprotectedConnections) unprotected), \(bytes(log.bytesHeld)) of \(bytes(log.capacityBytes)) held (\(log.chunksUsed)/\(log.chunkCount) chunks; budget \(bytes(log.connectionBudgetBytes)) a connection)"
            )
            Swift.print(
                "  \(log.connectionsLogged) connections and \(bytes(log.bytesLogged)) logged; \(log.wrapper.exchanges) HTTP exchanges, \(log.trims) trims freed \(bytes(log.bytesTrimmed)); explicit trims \(log.wrapper.explicitTrimsUsed) of \(log.wrapper.explicitTrims)"
            )
            Swift.print(
                "  not protected: \(log.unprotectedOverBudget) over budget, \(log.unprotectedLogFull) log full, \(log.admittedUnlogged) admitted unlogged (no slot); \(log.reclaimed) idle records reclaimed (bound \(Int(log.idleReclaimSeconds)) s)"
            )
            if !log.wrapper.framingStopped.isEmpty {
                let reasons = log.wrapper.framingStopped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                Swift.print("  whole-history fallbacks (HTTP framing not followed): \(reasons.joined(separator: ", "))")
            }
        }
        Swift.print(
            "health: tick \(status.health.tickMillis) ms, fail after \(status.health.missedTicks) missed; fence \(status.fence); recoveries \(status.recoveries)"
        )
        if let recovery = status.lastRecovery {
            Swift.print(
                "last recovery (\(recovery.startedAt)): \(recovery.cause); \(recovery.failedDomain) -> \(recovery.newPrimary)"
            )
            if let fault = recovery.injectedFault, let detect = recovery.detectMillis {
                Swift.print("  injected \(fault), detected after \(detect) ms")
            }
            let phases = recovery.phases.map { "\($0.name) \($0.millis) ms" }.joined(separator: ", ")
            Swift.print(
                "  phases: \(phases.isEmpty ? "none" : phases)\(recovery.reprotected ? "" : " (re-protection pending)")"
            )
            if let replay = recovery.replay {
                let spliced = replay.lastSplicedMillis.map { ", last spliced after \($0) ms" } ?? ""
                let firstByte = replay.firstByteMillis.map { ", first new byte after \($0) ms" } ?? ""
                let resumed = replay.rangeResumed.map { $0 > 0 ? " (\($0) resumed with a range)" : "" } ?? ""
                Swift.print(
                    "  replay: \(replay.connections) connections, \(replay.spliced) spliced\(resumed), \(replay.reset) reset\(spliced)\(firstByte)"
                )
                for reason in replay.resets { Swift.print("    reset \(reason)") }
            }
            for note in recovery.notes ?? [] { Swift.print("  note: \(note)") }
            if let error = recovery.error { Swift.print("  error: \(error)") }
        }
        if let handled = status.handled, handled != HandledActions() {
            Swift.print(
                "changed outside ftvm: backup paused again \(handled.backupsRepaused)x, replaced \(handled.backupsReplaced)x; takeovers by a fresh guest \(handled.freshPrimaries), finished by a restarted daemon \(handled.finishedByRestart)"
            )
        }
        if let upgrade = status.upgrade {
            Swift.print(
                "last upgrade (\(upgrade.startedAt)): \(upgrade.fromVersion) -> \(upgrade.toVersion), \(upgrade.step.rawValue); \(upgrade.drained) drained, \(upgrade.movedAtBoundary) moved between exchanges, \(upgrade.replayed) replayed, \(upgrade.reset) reset"
            )
            for error in upgrade.errors { Swift.print("  error: \(error)") }
        }
    }

    /// A byte count for people: B, KiB, MiB or GiB.
    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}
