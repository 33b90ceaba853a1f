import ArgumentParser
import FTVMController
import Foundation
import Logging

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the pair's daemon in the foreground (`ftvm up` starts it for you).")

    @OptionGroup var pair: PairOptions

    @Option(name: .long, help: "The guest image directory.")
    var image: String = PairConfig.defaultImageDirectory

    @Option(name: .long, help: "Protect this operator's libvirt domain instead of booting --image (`ftvm protect`).")
    var protect: String?

    @Option(name: .long, help: "With --protect: the guest's address on its network, ADDR/PREFIX.")
    var address: String?

    @OptionGroup var health: HealthOptions

    @OptionGroup var logOptions: LogOptions

    @OptionGroup var metricsOptions: MetricsOptions

    func run() throws {
        var config = try pair.config(image: image)
        try health.apply(to: &config)
        try logOptions.apply(to: &config)
        try metricsOptions.apply(to: &config)
        var logger = Logger(label: "ftvm.daemon")
        logger[metadataKey: "pair"] = "\(config.name)"
        do {
            let source: GuestSource
            if let protect {
                try ProtectTarget.apply(address: address ?? "", to: &config)
                source = .domain(try ProtectTarget.template(of: protect, config: config))
            } else {
                source = .image(try GuestImage(directory: image))
            }
            let daemon = try PairDaemon(config: config, source: source, logger: logger)
            // A signal takes the pair down cleanly, as `ftvm down` would.
            let signals = [SIGTERM, SIGINT].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { daemon.stop() }
                source.resume()
                return source
            }
            defer { signals.forEach { $0.cancel() } }
            try? "\(getpid())\n".write(toFile: config.pidFilePath, atomically: true, encoding: .utf8)
            try daemon.run()
            logger.info("daemon exiting")
        } catch {
            let message = "\(error)"
            try? message.write(toFile: config.failureFilePath, atomically: true, encoding: .utf8)
            throw CommandFailure(message)
        }
    }
}
