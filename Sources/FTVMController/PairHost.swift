import FTVMSystem
import FTVMVirt
import Foundation
import Glibc

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
        if let status = try? ControlClient.send(ControlRequest.status, to: config, timeoutSeconds: 5).status {
            throw PairHostError.alreadyServed(name: config.name, pid: status.daemonPID)
        }
        if image { _ = try GuestImage(directory: config.imageDirectory) }
        _ = try LibvirtConnection(uri: config.libvirtURI)
        try FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        // (Its control socket may be gone while a daemon still runs: the lock says for sure.)
        Glibc.close(try lock(config))
        try FileManager.default.createDirectory(atPath: PairConfig.logDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: config.failureFilePath)
    }

    /// Takes the pair's daemon lock (an exclusive flock(2) on `/run/ftvm/NAME/daemon.lock`) and
    /// returns its fd: held for as long as the fd is open, so by a daemon until it exits, however
    /// it exits. Throws `alreadyServed` while another process holds it.
    public static func lock(_ config: PairConfig) throws -> Int32 {
        let fd = open(config.lockFilePath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw PairHostError.unusableLock(path: config.lockFilePath, reason: String(cString: strerror(errno)))
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let pid = (try? String(contentsOfFile: config.pidFilePath, encoding: .utf8)).flatMap {
                Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            Glibc.close(fd)
            throw PairHostError.alreadyServed(name: config.name, pid: pid ?? 0)
        }
        return fd
    }

    /// Waits (at most `seconds`) until no daemon holds the pair's lock: `ftvm down` returns once
    /// the daemon that took the pair down has exited, so an `ftvm up` right after it starts.
    /// Returns whether the lock came free.
    @discardableResult
    public static func waitUntilUnlocked(_ config: PairConfig, seconds: Double) -> Bool {
        let deadline = Monotonic.nanos() + UInt64(seconds * 1e9)
        repeat {
            if let fd = try? lock(config) {
                Glibc.close(fd)
                return true
            }
            usleep(20_000)
        } while Monotonic.nanos() < deadline
        return false
    }

    /// Leaves the reason a daemon gave up where `ftvm up` (and an operator) finds it.
    public static func recordFailure(_ message: String, config: PairConfig) {
        try? FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try? message.write(toFile: config.failureFilePath, atomically: true, encoding: .utf8)
    }
}

public enum PairHostError: Error, CustomStringConvertible {
    case alreadyServed(name: String, pid: Int32)
    case unusableLock(path: String, reason: String)

    public var description: String {
        switch self {
        case .alreadyServed(let name, let pid):
            "pair '\(name)' already has a daemon (\(pid == 0 ? "its pid file is gone" : "pid \(pid)")); stop it first (`ftvm down --name \(name)`, or `systemctl stop ftvm@\(name)` if systemd runs it)"
        case .unusableLock(let path, let reason):
            "cannot open the pair's daemon lock \(path): \(reason)"
        }
    }
}
