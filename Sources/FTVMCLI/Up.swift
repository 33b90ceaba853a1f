import ArgumentParser
import FTVMController
import FTVMSystem
import FTVMVirt
import Foundation

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the daemon, boot a primary and a paused backup, and return once the primary serves.")

    @OptionGroup var pair: PairOptions

    @Option(name: .long, help: "The guest image directory (built by images/build.sh).")
    var image: String = PairConfig.defaultImageDirectory

    @OptionGroup var health: HealthOptions

    @OptionGroup var logOptions: LogOptions

    @OptionGroup var metricsOptions: MetricsOptions

    @Option(name: .long, help: "Seconds to wait for the pair to become protected.")
    var timeout: Double = 300

    @Flag(
        name: .long,
        help:
            "Only check the name, options, image and libvirt, make nothing, and exit (0 valid, 64 bad name or option, 1 image or libvirt)."
    )
    var check = false

    func run() throws {
        var config = try pair.config(image: image)
        try health.apply(to: &config)
        try logOptions.apply(to: &config)
        try metricsOptions.apply(to: &config)
        // Check what a user can fix before anything is made, so a failure leaves nothing behind.
        let guestImage: GuestImage
        do {
            guestImage = try GuestImage(directory: image)
        } catch {
            throw CommandFailure(error.description)
        }
        do {
            _ = try LibvirtConnection(uri: config.libvirtURI)
        } catch {
            throw CommandFailure("\(error)")
        }
        if check {
            print(
                "ftvm: pair '\(config.name)' can be brought up: image \(guestImage.directory) is complete, libvirt answers at \(config.libvirtURI)"
            )
            return
        }
        if let status = try? ControlClient.send(ControlRequest(.status), to: config).status {
            print("pair '\(config.name)' is already up (daemon pid \(status.daemonPID))")
            StatusPrinter.print(status)
            return
        }
        if case .at = config.metrics {
            // The daemon binds it again; failing here leaves nothing made (released at once).
            do {
                _ = try config.metrics.bind()
            } catch {
                throw CommandFailure("ftvm up: \(error)")
            }
        }

        let status = try DaemonLauncher.start(
            config: config,
            daemonArguments: ["--image", guestImage.directory] + health.arguments + logOptions.arguments
                + metricsOptions.arguments,
            timeout: timeout)
        print("clients: ip netns exec \(status.namespace) curl http://\(status.serviceAddress)/health")
    }
}

/// Starts `ftvm daemon` detached for a pair and follows it until the pair is protected.
enum DaemonLauncher {
    /// Returns the protected pair's status; on failure or timeout the pair is removed and the
    /// daemon's reason thrown.
    static func start(config: PairConfig, daemonArguments: [String], timeout: Double) throws -> PairStatus {
        try FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: PairConfig.logDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: config.failureFilePath)
        let pid = try DetachedProcess.spawn(
            [DetachedProcess.currentExecutable(), "daemon", "--name", config.name] + daemonArguments,
            logPath: config.daemonLogPath)
        print("ftvm: daemon started (pid \(pid), log \(config.daemonLogPath))")

        let started = Date()
        var lastPhase = ""
        while Date().timeIntervalSince(started) < timeout {
            guard DetachedProcess.isRunning(pid) else {
                let reason =
                    (try? String(contentsOfFile: config.failureFilePath, encoding: .utf8))
                    ?? "the daemon exited; see \(config.daemonLogPath)"
                throw CommandFailure("ftvm: the pair did not come up: \(reason)")
            }
            if let status = try? ControlClient.send(ControlRequest(.status), to: config, timeoutSeconds: 10).status {
                if status.phase != lastPhase {
                    lastPhase = status.phase
                    print(String(format: "ftvm: %@ after %.1f s", status.phase, Date().timeIntervalSince(started)))
                }
                if status.protected {
                    StatusPrinter.print(status)
                    return status
                }
            }
            usleep(250_000)
        }
        _ = try? ControlClient.send(ControlRequest(.down), to: config)
        throw CommandFailure(
            "ftvm: the pair was not protected within \(Int(timeout)) s and was removed; see \(config.daemonLogPath)")
    }
}
