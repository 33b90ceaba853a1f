import ArgumentParser
import FTVMController
import FTVMDataPlane
import Foundation

/// `ftvm`: the command line. Each subcommand is a thin layer over FTVMController.
public struct FTVMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ftvm",
        abstract: "Keep a network service in a VM alive across crashes and upgrades, without its clients noticing.",
        subcommands: [
            Up.self, Protect.self, Unprotect.self, Status.self, Watch.self, Connections.self, Inject.self,
            Failover.self,
            Upgrade.self, Chaos.self, Down.self, Daemon.self, Bench.self, Pipeline.self,
        ])

    public init() {}
}

/// The option every command on a running pair shares (`up` and `daemon` take `SettingsOptions`).
struct PairOptions: ParsableArguments {
    @Option(name: .long, help: "The pair's name (1-10 of a-z, 0-9, '-').")
    var name: String = PairConfig.defaultName

    func config() throws -> PairConfig {
        do {
            return try PairConfig(name: name)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// The settings `up` and `daemon` take: a config file, and options that override it (an option
/// given on the command line wins; the file fills in the rest; built-in defaults last). All of
/// them are checked by `PairSettings.resolve()`, whichever place they came from.
struct SettingsOptions: ParsableArguments {
    @Option(name: .long, help: "The pair's name (1-10 of a-z, 0-9, '-'; default \(PairConfig.defaultName)).")
    var name: String?

    @Option(name: .long, help: "The guest image directory (default \(PairConfig.defaultImageDirectory)).")
    var image: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The pair's YAML config file (see contrib/ftvm-example.yaml); options given here override it.",
            valueName: "file"))
    var config: String?

    @OptionGroup var health: HealthOptions

    @OptionGroup var logOptions: LogOptions

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve Prometheus metrics at http://HOST:PORT/metrics ('none': no metrics; 'auto': the default).",
            discussion:
                "Default: 127.0.0.1 on the first free port of 9477-9486 (one per pair on the host). An address given here must be free, or nothing starts."
        ))
    var metrics: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The clients' link MTU, 576-65000 (default \(PairConfig.defaultMTU)).",
            discussion:
                "The links carry 64 KiB TSO segments at any MTU; jumbo frames are an option. An operator's domain takes its bridge's MTU instead."
        ))
    var mtu: Int?

    @OptionGroup var tls: TLSOptions

    /// The options that were given, as settings.
    var given: PairSettings {
        var settings = PairSettings()
        func set(_ key: SettingKey, _ value: SettingValue?) {
            if let value, let option = key.option { settings.set(key, value, from: .option(option)) }
        }
        set(.name, name.map(SettingValue.text))
        set(.image, image.map(SettingValue.text))
        set(.tickMillis, health.tickMs.map(SettingValue.integer))
        set(.missedTicks, health.missedTicks.map(SettingValue.integer))
        set(.fence, health.fence.map(SettingValue.text))
        set(.logMiB, logOptions.logMib.map(SettingValue.integer))
        set(.connectionBudgetMiB, logOptions.connectionBudgetMib.map(SettingValue.integer))
        set(.idleReclaimSeconds, logOptions.idleReclaimS.map(SettingValue.integer))
        set(.httpPorts, logOptions.httpPorts.map { PairSettings.ports(parsing: $0) })
        set(.metrics, metrics.map(SettingValue.text))
        set(.mtu, mtu.map(SettingValue.integer))
        set(.tlsPorts, tls.tlsPort.isEmpty ? nil : .text(tls.tlsPort.joined(separator: ",")))
        set(.tlsCertificate, tls.tlsCert.map { .text(TLSOptions.absolute($0)) })
        set(.tlsKey, tls.tlsKey.map { .text(TLSOptions.absolute($0)) })
        set(.tlsSource, tls.tlsSource.map(SettingValue.text))
        return settings
    }

    /// The file's settings (`--config`, or `optionalFile` when it exists) with the options laid
    /// over them, checked. `extra`: settings a command takes in its own form (`protect`'s domain
    /// and address). `defaultName` names the pair when nothing else does (`protect`: the domain).
    func resolve(
        optionalFile: String? = nil, adding extra: PairSettings = PairSettings(), defaultName: String? = nil
    )
        throws -> ResolvedSettings
    {
        do {
            var file = PairSettings()
            if let config {
                file = try PairConfigFile.load(path: config)
            } else if let optionalFile, FileManager.default.fileExists(atPath: optionalFile) {
                file = try PairConfigFile.load(path: optionalFile)
            }
            var settings = try file.overridden(by: given).overridden(by: extra)
            if let defaultName, settings.entries[.name] == nil {
                settings.set(.name, .text(defaultName), from: .option("the domain's name"))
            }
            return try settings.resolve()
        } catch {
            throw CommandFailure(error.description)
        }
    }

    /// The given options but the name as arguments again (for the daemon `up` starts, which is
    /// given the resolved name), `--config` made absolute.
    var arguments: [String] {
        var arguments: [String] = []
        if let config { arguments += ["--config", URL(fileURLWithPath: config).standardizedFileURL.path] }
        for (key, entry) in given.entries.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where key != .name {
            guard let option = key.option else { continue }
            arguments += [option, entry.value.argument]
        }
        return arguments
    }
}

/// HTTPS terminated on the host (tls.* in a config file; docs/https.md).
struct TLSOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve HTTPS on PUBLIC at the service's address, as plain HTTP to the guest's GUEST port (repeatable; e.g. 443:8081).",
            valueName: "public:guest"))
    var tlsPort: [String] = []

    @Option(name: .long, help: ArgumentHelp("The PEM certificate chain for --tls-port.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .long, help: ArgumentHelp("The PEM private key for --tls-port (mode 600).", valueName: "file"))
    var tlsKey: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The address the terminator speaks to the guest from: a free host of the service's subnet (default: its last host).",
            valueName: "address"))
    var tlsSource: String?

    /// A path given on the command line, made absolute (the daemon does not share our directory).
    static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
}

/// How the daemon watches and fences (health.* in a config file).
struct HealthOptions: ParsableArguments {
    @Option(name: .long, help: "Heartbeat sampling period in milliseconds (default \(HealthPolicy().tickMillis)).")
    var tickMs: Int?

    @Option(
        name: .long,
        help:
            "Consecutive ticks without a heartbeat before the primary is failed (default \(HealthPolicy().missedTicks))."
    )
    var missedTicks: Int?

    @Option(
        name: .long,
        help: "What to do with a failed primary: pause (keep it until re-protected; the default) or destroy.")
    var fence: String?
}

/// How the connection log is sized and bounded (log.* and ports.http in a config file).
struct LogOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "The connection log's size in MiB (host shared memory, allocated at start; default \(PairSettings.defaultLogMiB))."
    )
    var logMib: Int?

    @Option(name: .long, help: "MiB one connection may hold in the log before it becomes unprotected (default 32).")
    var connectionBudgetMib: Int?

    @Option(
        name: .long,
        help:
            "Seconds a client may stay silent before its connection's record is reclaimed (default \(SouthSide.Policy().idleReclaimNanos / 1_000_000_000))."
    )
    var idleReclaimS: Int?

    @Option(
        name: .long,
        help:
            "Comma-separated HTTP/1.x ports whose exchanges are trimmed from the log ('none': no port; default \(SouthSide.Policy().httpPorts.sorted().map(String.init).joined(separator: ",")))."
    )
    var httpPorts: String?
}

/// A user-facing failure: printed as is, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
