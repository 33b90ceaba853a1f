import CFTVMShim
import Glibc
import SystemPackage

/// A listening IPv4 TCP socket (the daemon's metrics endpoint, `ftvm chaos`'s counting back end).
/// Blocking; owns its fd.
public final class TCPListener: Sendable {
    public let fd: Int32
    /// The address and port (host byte order) the kernel bound.
    public let address: IPv4Endpoint

    /// Binds `endpoint` (port 0 picks a free one) and listens. SO_REUSEADDR lets a restarted
    /// daemon bind again while the previous one's closed connections sit in TIME_WAIT; it does
    /// not let two listeners share a port. With `namespacePath` (`/run/netns/NAME`) the socket is
    /// made inside that network namespace, and listens there.
    public init(_ endpoint: IPv4Endpoint, namespacePath: String? = nil) throws(Errno) {
        let fd = try Syscall.negativeErrno { ftvm_socket_in(namespacePath, AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
        do {
            var on: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            var address = endpoint.sockaddr
            try Syscall.retrying {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            try Syscall.retrying { listen(fd, 16) }
            var bound = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            try Syscall.retrying {
                withUnsafeMutablePointer(to: &bound) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
                }
            }
            self.fd = fd
            self.address = IPv4Endpoint(
                hostOrderAddress: UInt32(bigEndian: bound.sin_addr.s_addr), port: UInt16(bigEndian: bound.sin_port))
        } catch {
            close(fd)
            throw error
        }
    }

    public func accept() throws(Errno) -> StreamSocket {
        StreamSocket(fd: try Syscall.negativeErrno { ftvm_accept_cloexec(fd) })
    }

    /// Stops accepting: a blocked `accept` returns with an error.
    public func shutdown() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit { close(fd) }
}

/// An IPv4 address and TCP port, as an operator writes it: `127.0.0.1:9477`.
public struct IPv4Endpoint: Sendable, Codable, Equatable, Hashable, CustomStringConvertible {
    /// The address in host byte order (127.0.0.1 is 0x7F00_0001).
    public var hostOrderAddress: UInt32
    public var port: UInt16

    public init(hostOrderAddress: UInt32, port: UInt16) {
        self.hostOrderAddress = hostOrderAddress
        self.port = port
    }

    /// Parses `A.B.C.D:PORT` (dotted IPv4, port 0-65535); nil when it is not that.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        let octets = text[..<colon].split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var address: UInt32 = 0
        for octet in octets {
            guard (1...3).contains(octet.count), octet.allSatisfy(\.isASCII), let value = UInt8(octet) else {
                return nil
            }
            address = address << 8 | UInt32(value)
        }
        self.init(hostOrderAddress: address, port: port)
    }

    public var isLoopback: Bool { hostOrderAddress >> 24 == 127 }

    public var description: String {
        let octets = [24, 16, 8, 0].map { String(hostOrderAddress >> $0 & 0xFF) }
        return "\(octets.joined(separator: ".")):\(port)"
    }

    var sockaddr: sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = hostOrderAddress.bigEndian
        return address
    }
}
