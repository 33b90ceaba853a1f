import ArgumentParser
import FTVMController
import Foundation

/// `ftvm`: the command line. Each subcommand is a thin layer over FTVMController.
public struct FTVMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ftvm",
        abstract: "Keep a network service in a VM alive across crashes and upgrades, without its clients noticing.",
        subcommands: [
            Up.self, Status.self, Watch.self, Connections.self, Inject.self, Failover.self, Upgrade.self, Down.self,
            Daemon.self,
            Bench.self,
        ])

    public init() {}
}

/// Options every pair command shares.
struct PairOptions: ParsableArguments {
    @Option(name: .long, help: "The pair's name (1-10 of a-z, 0-9, '-').")
    var name: String = PairConfig.defaultName

    func config(image: String = PairConfig.defaultImageDirectory) throws -> PairConfig {
        do {
            return try PairConfig(name: name, imageDirectory: image)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// How the daemon watches and fences; `up` hands these to the daemon it starts.
struct HealthOptions: ParsableArguments {
    @Option(name: .long, help: "Heartbeat sampling period in milliseconds.")
    var tickMs: Int = HealthPolicy().tickMillis

    @Option(name: .long, help: "Consecutive ticks without a heartbeat before the primary is failed.")
    var missedTicks: Int = HealthPolicy().missedTicks

    @Option(name: .long, help: "What to do with a failed primary: pause (keep it until re-protected) or destroy.")
    var fence: String = FencePolicy.pause.rawValue

    func apply(to config: inout PairConfig) throws {
        guard (10...10_000).contains(tickMs) else { throw ValidationError("--tick-ms must be 10-10000, not \(tickMs)") }
        guard (2...1000).contains(missedTicks) else {
            throw ValidationError("--missed-ticks must be 2-1000, not \(missedTicks)")
        }
        guard let policy = FencePolicy(rawValue: fence) else {
            throw ValidationError(
                "--fence must be \(FencePolicy.allCases.map(\.rawValue).joined(separator: " or ")), not '\(fence)'")
        }
        config.health.tickMillis = tickMs
        config.health.missedTicks = missedTicks
        config.fence = policy
    }

    var arguments: [String] { ["--tick-ms", "\(tickMs)", "--missed-ticks", "\(missedTicks)", "--fence", fence] }
}

/// How the connection log is sized and bounded; `up` hands these to the daemon it starts.
struct LogOptions: ParsableArguments {
    @Option(name: .long, help: "The connection log's size in MiB (host shared memory, allocated at start).")
    var logMib: Int = 128

    @Option(name: .long, help: "MiB one connection may hold in the log before it becomes unprotected.")
    var connectionBudgetMib: Int = 32

    @Option(name: .long, help: "Seconds a client may stay silent before its connection's record is reclaimed.")
    var idleReclaimS: Int = 600

    @Option(
        name: .long, help: "Comma-separated HTTP/1.x ports whose exchanges are trimmed from the log ('none': no port).")
    var httpPorts: String = "80,8080,8081"

    func apply(to config: inout PairConfig) throws {
        guard (1...16384).contains(logMib) else { throw ValidationError("--log-mib must be 1-16384, not \(logMib)") }
        guard (1...logMib).contains(connectionBudgetMib) else {
            throw ValidationError(
                "--connection-budget-mib must be 1-\(logMib) (the log's size), not \(connectionBudgetMib)")
        }
        guard (1...86400 * 7).contains(idleReclaimS) else {
            throw ValidationError("--idle-reclaim-s must be 1-604800, not \(idleReclaimS)")
        }
        config.setLogSize(mebibytes: logMib)
        config.connectionBudgetBytes = UInt64(connectionBudgetMib) << 20
        config.logPolicy.idleReclaimNanos = UInt64(idleReclaimS) * 1_000_000_000
        config.logPolicy.httpPorts = try Self.ports(httpPorts)
    }

    static func ports(_ text: String) throws -> Set<UInt16> {
        if text == "none" { return [] }
        var ports: Set<UInt16> = []
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let port = UInt16(field.trimmingCharacters(in: .whitespaces)), port > 0 else {
                throw ValidationError("--http-ports: '\(field)' is not a port 1-65535 (use e.g. 80,8080, or 'none')")
            }
            ports.insert(port)
        }
        return ports
    }

    var arguments: [String] {
        [
            "--log-mib", "\(logMib)", "--connection-budget-mib", "\(connectionBudgetMib)", "--idle-reclaim-s",
            "\(idleReclaimS)", "--http-ports", httpPorts,
        ]
    }
}

/// A user-facing failure: printed as is, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
