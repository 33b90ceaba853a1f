import Glibc
import SystemPackage

/// A connected stream socket (the control socket, a metrics scrape). Blocking; owns its fd.
public final class StreamSocket: Sendable {
    public let fd: Int32

    init(fd: Int32) { self.fd = fd }

    /// Gives up on a read or write that waits longer than `seconds`.
    public func setTimeout(seconds: Int) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    public func write(_ bytes: [UInt8]) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let written = try Syscall.retrying {
                bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            }
            offset += written
        }
    }

    /// Reads up to and excluding the next newline; nil at end of stream before any byte.
    public func readLine(limit: Int = 1 << 20) throws(Errno) -> [UInt8]? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < limit {
            let count = try Syscall.retrying { Glibc.read(fd, &byte, 1) }
            if count == 0 { return line.isEmpty ? nil : line }
            if byte == UInt8(ascii: "\n") { return line }
            line.append(byte)
        }
        throw Errno.messageTooLong
    }

    deinit { close(fd) }
}
