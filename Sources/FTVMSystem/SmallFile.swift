import Glibc
import SystemPackage

/// Whole-file reads and writes for small control files (sysfs, procfs, /etc), without Foundation,
/// so the guest agent can use them.
public enum SmallFile {
    /// The file's contents as text; throws when it cannot be opened or read.
    public static func read(_ path: String, limit: Int = 1 << 20) throws(Errno) -> String {
        let fd = try Syscall.retrying { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let count = try Syscall.retrying {
                chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` to an existing file (a sysfs or procfs knob), without creating it.
    public static func write(_ path: String, _ text: String) throws(Errno) {
        let fd = try Syscall.retrying { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        try Syscall.retrying { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
    }
}
