import CFTVMShim
import Glibc
import SystemPackage

/// A connected AF_UNIX stream (the control socket). Blocking; owns its fd.
public final class UnixStream: Sendable {
    public let fd: Int32

    init(fd: Int32) { self.fd = fd }

    /// Connects to the socket at `path`.
    public static func connect(to path: String) throws(Errno) -> UnixStream {
        let fd = try Syscall.retrying { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let stream = UnixStream(fd: fd)
        var address = try UnixListener.address(path)
        try Syscall.retrying {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return stream
    }

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

/// A listening AF_UNIX socket at a path (mode 0600: the control socket is root's).
public final class UnixListener: Sendable {
    public let fd: Int32
    public let path: String

    public init(path: String) throws(Errno) {
        var address = try Self.address(path)
        let fd = try Syscall.retrying { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            unlink(path)
            let previous = umask(0o077)
            defer { umask(previous) }
            try Syscall.retrying {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
            }
            try Syscall.retrying { listen(fd, 16) }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.path = path
    }

    public func accept() throws(Errno) -> UnixStream {
        let client = try Syscall.negativeErrno { ftvm_accept_cloexec(fd) }
        return UnixStream(fd: client)
    }

    /// Stops accepting: a blocked `accept` returns with an error.
    public func shutdown() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    static func address(_ path: String) throws(Errno) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Errno.fileNameTooLong }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
