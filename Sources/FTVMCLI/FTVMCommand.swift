import ArgumentParser
import FTVMController

/// `ftvm`: the command line. Each subcommand is a thin layer over FTVMController.
public struct FTVMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ftvm",
        abstract: "Keep a network service in a VM alive across crashes and upgrades, without its clients noticing.",
        subcommands: [Up.self, Status.self, Connections.self, Inject.self, Failover.self, Upgrade.self, Down.self, Daemon.self, Bench.self])

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
        guard (2...1000).contains(missedTicks) else { throw ValidationError("--missed-ticks must be 2-1000, not \(missedTicks)") }
        guard let policy = FencePolicy(rawValue: fence) else {
            throw ValidationError("--fence must be \(FencePolicy.allCases.map(\.rawValue).joined(separator: " or ")), not '\(fence)'")
        }
        config.health.tickMillis = tickMs
        config.health.missedTicks = missedTicks
        config.fence = policy
    }

    var arguments: [String] { ["--tick-ms", "\(tickMs)", "--missed-ticks", "\(missedTicks)", "--fence", fence] }
}

/// A user-facing failure: printed as is, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
