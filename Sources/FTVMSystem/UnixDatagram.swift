import Glibc
import SystemPackage

/// An AF_UNIX datagram socket: unbound to send to systemd's sockets (`$NOTIFY_SOCKET`, the
/// journal's), or bound to an address to receive (tests stand in for systemd with one). Owns
/// its fd.
///
/// An address is a file system path, or, when it starts with '@', a name in the abstract
/// namespace (unix(7): a leading NUL byte, the length given exactly, no file), as systemd
/// writes abstract addresses in `$NOTIFY_SOCKET`.
public final class UnixDatagram: Sendable {
    public let fd: Int32
    /// The bound address (nil for a sending socket); a path is unlinked in `deinit`.
    public let boundAddress: String?

    /// An unbound socket for `send(_:to:)`.
    public init() throws(Errno) {
        fd = try Self.makeSocket()
        boundAddress = nil
    }

    /// A socket bound to `address` (a stale file at a path is replaced).
    public init(bindingTo address: String) throws(Errno) {
        let fd = try Self.makeSocket()
        do {
            var (socketAddress, length) = try Self.address(address)
            if !address.hasPrefix("@") { unlink(address) }
            try Syscall.retrying {
                withUnsafePointer(to: &socketAddress) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        boundAddress = address
    }

    /// Sends one datagram to `address`; returns once the kernel has queued it.
    public func send(_ bytes: [UInt8], to address: String) throws(Errno) {
        var (socketAddress, length) = try Self.address(address)
        try Syscall.retrying {
            bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &socketAddress) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, length)
                    }
                }
            }
        }
    }

    /// Waits up to `timeoutSeconds` for one datagram (at most `limit` bytes); nil on timeout.
    public func receive(limit: Int = 1 << 20, timeoutSeconds: Double) throws(Errno) -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = try Syscall.retrying { poll(&poller, 1, Int32(timeoutSeconds * 1000)) }
        guard ready > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: limit)
        let count = try Syscall.retrying { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
        return Array(buffer[..<count])
    }

    /// `address` as a sockaddr_un and the length to pass with it.
    static func address(_ address: String) throws(Errno) -> (sockaddr_un, socklen_t) {
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        let abstract = address.hasPrefix("@")
        // Abstract: NUL then the name, and the length counts exactly those bytes (no terminator).
        let bytes = abstract ? [0] + Array(address.utf8.dropFirst()) : Array(address.utf8)
        let capacity = MemoryLayout.size(ofValue: socketAddress.sun_path)
        guard bytes.count > (abstract ? 1 : 0) else { throw Errno.invalidArgument }
        guard bytes.count < capacity else { throw Errno.fileNameTooLong }
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { $0.copyBytes(from: bytes) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        return (socketAddress, socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1)))
    }

    private static func makeSocket() throws(Errno) -> Int32 {
        try Syscall.retrying { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    deinit {
        close(fd)
        if let boundAddress, !boundAddress.hasPrefix("@") { unlink(boundAddress) }
    }
}
