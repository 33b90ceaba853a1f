import ArgumentParser
import FTVMController
import FTVMSystem
import Foundation

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the daemon, boot a primary and a paused backup, and return once the primary serves.")

    @OptionGroup var settings: SettingsOptions

    @Option(name: .long, help: "Seconds to wait for the pair to become protected.")
    var timeout: Double = 300

    func run() throws {
        // Every setting is checked before anything is made, so a mistake leaves nothing behind.
        let config = try settings.resolve().config
        if let status = try? ControlClient.send(ControlRequest(.status), to: config).status {
            print("pair '\(config.name)' is already up (daemon pid \(status.daemonPID))")
            StatusPrinter.print(status)
            return
        }
        do {
            _ = try PairHost.prepare(config)
        } catch {
            throw CommandFailure("\(error)")
        }
        // The daemon reads the same file and options, so it resolves the same settings.
        let pid = try DetachedProcess.spawn(
            [DetachedProcess.currentExecutable(), "daemon", "--name", config.name] + settings.arguments,
            logPath: config.daemonLogPath)
        print("ftvm: daemon started (pid \(pid), log \(config.daemonLogPath))")

        let started = Date()
        var lastPhase = ""
        while Date().timeIntervalSince(started) < timeout {
            guard DetachedProcess.isRunning(pid) else {
                let reason =
                    (try? String(contentsOfFile: config.failureFilePath, encoding: .utf8))
                    ?? "the daemon exited; see \(config.daemonLogPath)"
                throw CommandFailure("ftvm up failed: \(reason)")
            }
            if let status = try? ControlClient.send(ControlRequest(.status), to: config, timeoutSeconds: 10).status {
                if status.phase != lastPhase {
                    lastPhase = status.phase
                    print(String(format: "ftvm: %@ after %.1f s", status.phase, Date().timeIntervalSince(started)))
                }
                if status.protected {
                    StatusPrinter.print(status)
                    print("clients: ip netns exec \(status.namespace) curl http://\(status.serviceAddress)/health")
                    return
                }
            }
            usleep(250_000)
        }
        _ = try? ControlClient.send(ControlRequest(.down), to: config)
        throw CommandFailure(
            "ftvm up: the pair was not protected within \(Int(timeout)) s and was removed; see \(config.daemonLogPath)")
    }
}
