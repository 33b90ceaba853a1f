import FTVMVirt
import Foundation

/// What this host must offer before a pair's daemon may start, checked and made in one place
/// for both ways a daemon starts: `ftvm up` (before it spawns the daemon, so its errors reach
/// the user's terminal) and `ftvm daemon` run directly (by systemd, or by hand).
public enum PairHost {
    /// Checks what a user can fix (the image, libvirtd) before anything is made, so a failure
    /// leaves nothing behind; then makes the run and log directories and clears a previous
    /// daemon's failure note.
    public static func prepare(_ config: PairConfig) throws -> GuestImage {
        let image = try GuestImage(directory: config.imageDirectory)
        _ = try LibvirtConnection(uri: config.libvirtURI)
        try FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: PairConfig.logDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: config.failureFilePath)
        return image
    }

    /// Leaves the reason a daemon gave up where `ftvm up` (and an operator) finds it.
    public static func recordFailure(_ message: String, config: PairConfig) {
        try? FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        try? message.write(toFile: config.failureFilePath, atomically: true, encoding: .utf8)
    }
}
