import ArgumentParser
import FTVMController
import FTVMSystem
import FTVMVirt
import Foundation

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the daemon, boot a primary and a paused backup, and return once the primary serves.")

    @OptionGroup var settings: SettingsOptions

    @Option(name: .long, help: "Seconds to wait for the pair to become protected.")
    var timeout: Double = 300

    @Flag(
        name: .long,
        help:
            "Only check the name, options, image and libvirt, make nothing, and exit (0 valid, 64 bad name or option, 1 image or libvirt)."
    )
    var check = false

    func run() throws {
        // Every setting is checked before anything is made, so a mistake leaves nothing behind.
        let resolved: ResolvedSettings
        do {
            resolved = try settings.resolve()
        } catch {
            // --check tells a bad setting (64, like a bad option) from a missing image (1).
            if check { throw ValidationError("\(error)") }
            throw error
        }
        let config = resolved.config
        if let domain = resolved.domain {
            throw CommandFailure("the config names domain \(domain): use `ftvm protect --config FILE` for it")
        }
        if check {
            let image: GuestImage
            do {
                image = try GuestImage(directory: config.imageDirectory)
                _ = try LibvirtConnection(uri: config.libvirtURI)
                if let tls = config.tls {
                    for warning in try TLSTerminator.check(tls) { print("ftvm: warning: \(warning)") }
                }
            } catch {
                throw CommandFailure("\(error)")
            }
            print(
                "ftvm: pair '\(config.name)' can be brought up: image \(image.directory) is complete, libvirt answers at \(config.libvirtURI)"
            )
            return
        }
        if let status = try? ControlClient.send(ControlRequest.status, to: config).status {
            print("pair '\(config.name)' is already up (daemon pid \(status.daemonPID))")
            StatusPrinter.print(status)
            return
        }
        let status = try DaemonLauncher.start(config: config, daemonArguments: settings.arguments, timeout: timeout)
        print("clients: ip netns exec \(status.namespace) curl http://\(status.serviceAddress)/health")
    }
}

/// Starts `ftvm daemon` detached for a pair and follows it until the pair is protected.
enum DaemonLauncher {
    /// Checks the host (`PairHost.prepare`) and a chosen metrics address, starts the daemon,
    /// and returns the protected pair's status; on failure or timeout the pair is removed and
    /// the daemon's reason thrown.
    /// `serving` is called once, when the primary's agent first reports ready (the service
    /// answers from then on, before the backup is).
    static func start(
        config: PairConfig, image: Bool = true, daemonArguments: [String], timeout: Double,
        serving: (PairStatus) -> Void = { _ in }
    ) throws
        -> PairStatus
    {
        do {
            try PairHost.prepare(config, image: image)
            if let tls = config.tls {
                for warning in try TLSTerminator.check(tls) { print("ftvm: warning: \(warning)") }
            }
            if case .at = config.metrics {
                // The daemon binds it again; failing here leaves nothing made (released at once).
                _ = try config.metrics.bind()
            }
        } catch {
            throw CommandFailure("\(error)")
        }
        // The daemon reads the same file and options, so it resolves the same settings.
        let pid = try DetachedProcess.spawn(
            [DetachedProcess.currentExecutable(), "daemon", "--name", config.name] + daemonArguments,
            logPath: config.daemonLogPath)
        print("ftvm: daemon started (pid \(pid), log \(config.daemonLogPath))")

        let started = Date()
        var lastPhase = ""
        var served = false
        while Date().timeIntervalSince(started) < timeout {
            guard DetachedProcess.isRunning(pid) else {
                let reason =
                    (try? String(contentsOfFile: config.failureFilePath, encoding: .utf8))
                    ?? "the daemon exited; see \(config.daemonLogPath)"
                throw CommandFailure("ftvm: the pair did not come up: \(reason)")
            }
            if let status = try? ControlClient.send(ControlRequest.status, to: config, timeoutSeconds: 10).status {
                if !served, status.guests.contains(where: { $0.role == "primary" && $0.agent == "ready" }) {
                    served = true
                    serving(status)
                }
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
        _ = try? ControlClient.send(ControlRequest.down, to: config)
        throw CommandFailure(
            "ftvm: the pair was not protected within \(Int(timeout)) s and was removed; see \(config.daemonLogPath)")
    }
}
