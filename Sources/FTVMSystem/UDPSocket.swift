import CFTVMShim
import Glibc
import SystemPackage

/// A non-blocking UDP socket on 127.0.0.1: the daemon's end of the guests' QEMU socket netdevs.
/// QEMU sends each Ethernet frame as one datagram, so a datagram is a frame.
public final class UDPSocket: Sendable {
    public let fd: Int32
    /// The local port (host byte order) the kernel bound.
    public let port: UInt16

    /// Binds 127.0.0.1:`port` (0 picks a free one).
    public init(loopbackPort port: UInt16 = 0) throws(Errno) {
        let fd = try Syscall.retrying { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try Syscall.negativeErrno { ftvm_set_nonblocking(fd) }
            var address = Self.loopback(port: port)
            try Syscall.retrying {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            var bound = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            try Syscall.retrying {
                withUnsafeMutablePointer(to: &bound) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
                }
            }
            // Frames arrive in bursts (a TCP window at a time): give the kernel room to queue them.
            var bufferSize: Int32 = 4 << 20
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferSize, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufferSize, socklen_t(MemoryLayout<Int32>.size))
            self.fd = fd
            self.port = UInt16(bigEndian: bound.sin_port)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Asks the kernel for a currently free loopback UDP port (for a QEMU end to bind).
    public static func freePort() throws(Errno) -> UInt16 {
        try UDPSocket().port
    }

    /// Receives one datagram; nil when none is waiting. Returns its length and source port.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> (count: Int, sourcePort: UInt16)? {
        var source = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        do {
            let count = try Syscall.retrying {
                withUnsafeMutablePointer(to: &source) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length)
                    }
                }
            }
            return (count, UInt16(bigEndian: source.sin_port))
        } catch where error.isWouldBlock {
            return nil
        }
    }

    /// Sends one datagram to 127.0.0.1:`port`. A full socket buffer drops the frame, as a
    /// congested link would; TCP recovers it.
    public func send(_ frame: UnsafeRawBufferPointer, toPort port: UInt16) throws(Errno) {
        var address = Self.loopback(port: port)
        do {
            try Syscall.retrying {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, frame.baseAddress, frame.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        } catch where error.isWouldBlock || error == .connectionRefused {
            // Nobody listening (the guest's QEMU is not up yet) or no room: the frame is lost.
        }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    deinit { close(fd) }
}
