import ArgumentParser
import FTVMController
import FTVMSystemd
import FTVMVirt
import Foundation
import Logging

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the pair's daemon in the foreground (`ftvm up` starts it for you; so does ftvm@NAME.service).")

    @OptionGroup var settings: SettingsOptions

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A config file to read if it exists (the systemd unit passes /etc/ftvm/NAME.yaml); --config wins.",
            valueName: "file"))
    var configIfPresent: String?

    @Option(name: .long, help: "Protect this libvirt domain instead of booting an image (`ftvm protect` passes it).")
    var protect: String?

    @Option(name: .long, help: "With a domain to protect: the guest's address on its network, ADDR/PREFIX.")
    var address: String?

    func run() throws {
        let resolved = try settings.resolve(
            optionalFile: configIfPresent,
            adding: try ProtectTarget.settings(domain: protect, from: "--protect", address: address))
        try ProtectTarget.requireAddress(resolved)
        let config = resolved.config
        let domain = resolved.domain
        Self.bootstrapLogging()
        var logger = Logger(label: "ftvm.daemon")
        logger[metadataKey: "pair"] = "\(config.name)"
        let notifier = Self.notifier(logger: logger)
        do {
            try PairHost.prepare(config, image: domain == nil)
            // Held until the process exits: no second daemon for the pair, whatever its socket.
            let lock = try PairHost.lock(config)
            defer { close(lock) }
            let source: GuestSource =
                if let domain {
                    // After `ftvm upgrade --disk/--domain` the pair's guests come from the new
                    // definition, until `ftvm down`.
                    if let upgraded = try? String(contentsOfFile: config.upgradedDefinitionPath, encoding: .utf8) {
                        .domain(try OperatorDomain(xml: upgraded))
                    } else {
                        .domain(try ProtectTarget.template(of: domain, config: config, mayRun: false).domain)
                    }
                } else {
                    .image(try GuestImage(directory: config.imageDirectory))
                }
            let daemon = try PairDaemon(config: config, source: source, logger: logger)
            // A signal takes the pair down cleanly, as `ftvm down` would.
            let signals = [SIGTERM, SIGINT].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    try? notifier?.stopping(status: "pair \(config.name): taking the pair down")
                    daemon.stop()
                }
                source.resume()
                return source
            }
            defer { signals.forEach { $0.cancel() } }
            try? "\(getpid())\n".write(toFile: config.pidFilePath, atomically: true, encoding: .utf8)
            if let notifier {
                ReadinessReporter(daemon: daemon, notifier: notifier, name: config.name, logger: logger).start()
            }
            try daemon.run()
            logger.info("daemon exiting")
        } catch PairError.stopping {
            // SIGTERM while the pair was still coming up: it is down, as asked; not a failure
            // (systemd would mark the unit failed).
            logger.info("daemon exiting: stopped during bring-up")
        } catch {
            let message = "\(error)"
            PairHost.recordFailure(message, config: config)
            throw CommandFailure(message)
        }
    }

    /// Under systemd (stderr is the journal stream: `JournalStream`), entries go to the journal
    /// with structured fields; otherwise lines go to stderr, which `ftvm up` points at the
    /// pair's log file. `FTVM_LOG_LEVEL` (trace, debug, info, notice, warning, error, critical)
    /// sets the level, info by default.
    private static func bootstrapLogging() {
        let journal = JournalStream.isStandardError()
        let level = ProcessInfo.processInfo.environment["FTVM_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                journal
                ? (try? JournalLogHandler(label: label)) ?? StreamLogHandler.standardError(label: label)
                : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// The notifier `$NOTIFY_SOCKET` names (systemd's `Type=notify`), if any.
    private static func notifier(logger: Logger) -> SystemdNotifier? {
        do {
            return try SystemdNotifier()
        } catch {
            logger.warning("cannot open a socket for sd_notify", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// Follows the daemon's phase and tells systemd: `READY=1` the first time the pair is
/// protected (so `systemctl start` returns when `ftvm status` would say protected), and a
/// `STATUS=` line at every change of phase. It samples the phase every 100 ms (what the pair
/// state offers; a change costs systemd one datagram).
struct ReadinessReporter: Sendable {
    let daemon: PairDaemon
    let notifier: SystemdNotifier
    let name: String
    let logger: Logger

    func start() {
        let thread = Thread {
            var last: PairDaemon.Phase?
            var ready = false
            while true {
                let phase = daemon.phase
                if phase == .stopping { return }
                if phase != last {
                    last = phase
                    let status = "pair \(name): \(phase.rawValue)"
                    do {
                        if phase == .protected, !ready {
                            try notifier.ready(status: status)
                            ready = true
                        } else {
                            try notifier.status(status)
                        }
                    } catch {
                        logger.warning(
                            "cannot notify systemd", metadata: ["socket": "\(notifier.address)", "error": "\(error)"])
                    }
                }
                usleep(100_000)
            }
        }
        thread.name = "ftvm-sd-notify"
        thread.start()
    }
}
