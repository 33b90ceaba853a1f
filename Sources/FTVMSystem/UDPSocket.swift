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

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    deinit { close(fd) }
}

/// Fixed storage for a batch of frames, reused for every batch: the relay allocates nothing
/// per frame. `count` slots of `stride` bytes each.
public final class FrameBatch: @unchecked Sendable {
    public static let maximumCount = 64
    public let stride: Int
    public let capacity: Int
    public private(set) var count = 0
    let storage: UnsafeMutableRawPointer
    let lengths: UnsafeMutablePointer<Int32>
    let ports: UnsafeMutablePointer<UInt16>

    public init(capacity: Int = 32, stride: Int = 65536) {
        precondition(capacity > 0 && capacity <= Self.maximumCount, "batch capacity out of range")
        self.capacity = capacity
        self.stride = stride
        storage = .allocate(byteCount: capacity * stride, alignment: 64)
        lengths = .allocate(capacity: capacity)
        ports = .allocate(capacity: capacity)
    }

    /// Frame `index` of the batch.
    public func frame(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + index * stride, count: Int(lengths[index]))
    }

    /// The source port of frame `index` (received batches).
    public func sourcePort(_ index: Int) -> UInt16 { ports[index] }

    /// The bytes of the frames in the batch.
    public var byteCount: Int { (0..<count).reduce(0) { $0 + Int(lengths[$1]) } }

    /// The free slot after the last frame, for filling by hand (a tap read).
    public var nextSlot: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + count * stride, count: stride)
    }

    /// Keeps the frame of `length` bytes just written into `nextSlot`.
    public func commitSlot(length: Int) {
        lengths[count] = Int32(length)
        count += 1
    }

    public var isFull: Bool { count == capacity }

    public func reset() { count = 0 }

    func setReceived(_ received: Int) { count = received }

    deinit {
        storage.deallocate()
        lengths.deallocate()
        ports.deallocate()
    }
}

extension UDPSocket {
    /// Receives up to a batch of datagrams with one recvmmsg(2); returns how many (0: none).
    public func receive(into batch: FrameBatch) throws(Errno) -> Int {
        batch.reset()
        do {
            let received = try Syscall.negativeErrno {
                ftvm_recv_batch(
                    fd, batch.storage, Int32(batch.stride), Int32(batch.capacity), batch.lengths, batch.ports)
            }
            batch.setReceived(Int(received))
            return Int(received)
        } catch  where error.isWouldBlock {
            return 0
        }
    }

    /// Sends the batch's frames to 127.0.0.1:`port` with sendmmsg(2). Frames that do not fit
    /// in the socket buffer are dropped, as on a congested link.
    public func send(_ batch: FrameBatch, toPort port: UInt16) throws(Errno) {
        var offset = 0
        while offset < batch.count {
            let start = offset
            do {
                let sent = try Syscall.negativeErrno {
                    ftvm_send_batch(
                        fd, batch.storage + start * batch.stride, Int32(batch.stride), batch.lengths + start,
                        Int32(batch.count - start), port)
                }
                offset += max(1, Int(sent))
            } catch  where error.isWouldBlock || error == .connectionRefused {
                return
            }
        }
    }
}
