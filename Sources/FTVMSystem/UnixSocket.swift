import CFTVMShim
import Glibc
import SystemPackage

extension StreamSocket {
    /// Connects to the socket at `path`.
    public static func connect(to path: String) throws(Errno) -> StreamSocket {
        let fd = try Syscall.retrying { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let stream = StreamSocket(fd: fd)
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
}

/// A listening AF_UNIX socket at a path (mode 0600: the control socket is root's).
public final class UnixListener: Sendable {
    public let fd: Int32
    public let path: String
    /// The socket file this listener bound (device, inode): only that file is removed at the
    /// end. A successor (a daemon started while this one still exits) may have bound the path
    /// again meanwhile, and its socket must stay.
    private let file: (device: UInt64, inode: UInt64)?

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
        file = Self.identity(of: path)
    }

    private static func identity(of path: String) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    public func accept() throws(Errno) -> StreamSocket {
        let client = try Syscall.negativeErrno { ftvm_accept_cloexec(fd) }
        return StreamSocket(fd: client)
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
        if let file, let now = Self.identity(of: path), now == file { unlink(path) }
    }
}
