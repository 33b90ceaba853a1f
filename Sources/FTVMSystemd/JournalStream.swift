import Foundation
import Glibc

/// Whether this process's standard error is systemd's journal stream.
///
/// systemd sets `JOURNAL_STREAM=DEVICE:INODE` for a service whose stdout or stderr it
/// connected to the journal (systemd.exec(5)), and documents this check: a process may switch
/// to the native protocol when the device and inode of its stderr match. `INVOCATION_ID` alone
/// says only that systemd started us (stderr may still be a file or a terminal), and a
/// `JOURNAL_STREAM` inherited by a child whose stderr was redirected no longer matches.
public enum JournalStream {
    public static func isStandardError(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}
