import FTVMVirt
import Foundation

/// What this host must offer before a pair's daemon may start, checked and made in one place
/// for both ways a daemon starts: `ftvm up` (before it spawns the daemon, so its errors reach
/// the user's terminal) and `ftvm daemon` run directly (by systemd, or by hand).
public enum PairHost {
    /// Checks what a user can fix (libvirtd, no daemon already serving the pair, and the image
    /// unless the pair protects a domain) before anything is made, so a failure leaves nothing
    /// behind; then makes the run and log directories and clears a previous daemon's failure note.
    public static func prepare(_ config: PairConfig, image: Bool = true) throws {
        // A second daemon would take over the first one's control socket and fight it for the
        // guests (`ftvm up` and ftvm@NAME.service for one pair, say).
        if let status = try? ControlClient.send(ControlRequest(.status), to: config, timeoutSeconds: 5).status {
            throw PairHostError.alreadyServed(name: config.name, pid: status.daemonPID)
        }
        if image { _ = try GuestImage(directory: config.imageDirectory) }
        _ = try LibvirtConnection(uri: config.libvirtURI)
        try FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: PairConfig.logDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: config.failureFilePath)
    }

    /// Leaves the reason a daemon gave up where `ftvm up` (and an operator) finds it.
    public static func recordFailure(_ message: String, config: PairConfig) {
        try? FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try? message.write(toFile: config.failureFilePath, atomically: true, encoding: .utf8)
    }
}

public enum PairHostError: Error, CustomStringConvertible {
    case alreadyServed(name: String, pid: Int32)

    public var description: String {
        switch self {
        case .alreadyServed(let name, let pid):
            "pair '\(name)' already has a daemon (pid \(pid)); stop it first (`ftvm down --name \(name)`, or `systemctl stop ftvm@\(name)` if systemd runs it)"
        }
    }
}
