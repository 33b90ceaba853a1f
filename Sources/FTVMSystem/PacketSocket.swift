import CFTVMShim
import Glibc
import SystemPackage

/// The daemon's end of one guest's link: an AF_PACKET socket on the host side of the tap whose
/// other end is the guest's QEMU. Every frame read or written starts with a virtio-net header
/// (`VirtioNetHeader`), so a guest's TSO super-frames (up to 64 KiB) and partial checksums pass
/// whole, and the kernel cuts what the other side cannot take.
public final class PacketSocket: Sendable {
    public let fd: Int32
    public let interface: String

    /// Opens the socket on `interface` (which must exist). Needs CAP_NET_RAW and CAP_NET_ADMIN.
    public init(interface: String) throws(Errno) {
        // A window of super-frames: give the kernel room to queue them.
        fd = try Syscall.negativeErrno { ftvm_packet_open(interface, 8 << 20) }
        self.interface = interface
    }

    /// Receives up to a batch of frames with one recvmmsg(2); returns how many (0: none). The
    /// link going down (its QEMU gone, the tap removed) is reported once, as ENETDOWN: nothing
    /// to read then either.
    public func receive(into batch: FrameBatch) throws(Errno) -> Int {
        batch.reset()
        do {
            let received = try Syscall.negativeErrno {
                ftvm_recv_frames(fd, batch.storage, Int32(batch.stride), Int32(batch.capacity), batch.lengths)
            }
            batch.setReceived(Int(received))
            return Int(received)
        } catch  where error.isWouldBlock || error == .networkDown {
            return 0
        }
    }

    /// Sends the batch's frames with sendmmsg(2). Frames that do not fit in the socket buffer,
    /// or find the link down (its QEMU gone), are dropped, as on a congested or cut link.
    public func send(_ batch: FrameBatch) throws(Errno) {
        var offset = 0
        while offset < batch.count {
            let start = offset
            do {
                let sent = try Syscall.negativeErrno {
                    ftvm_send_frames(
                        fd, batch.storage + start * batch.stride, Int32(batch.stride), batch.lengths + start,
                        Int32(batch.count - start))
                }
                offset += max(1, Int(sent))
            } catch
                where error.isWouldBlock || error == .noBufferSpace || error == .networkDown
                || error == .noSuchAddressOrDevice
            {
                return
            }
        }
    }

    deinit { close(fd) }
}

/// Fixed storage for a batch of frames, reused for every batch: the relay allocates nothing
/// per frame. `count` slots of `stride` bytes each; a slot holds a virtio-net header and the
/// largest frame a header can describe (64 KiB of IP and the Ethernet header).
public final class FrameBatch: @unchecked Sendable {
    public static let maximumCount = 64
    /// Room for a header, an Ethernet header and a 65535-byte IP packet, rounded up.
    public static let slotSize = 65536 + 128
    public let stride: Int
    public let capacity: Int
    public private(set) var count = 0
    let storage: UnsafeMutableRawPointer
    let lengths: UnsafeMutablePointer<Int32>

    public init(capacity: Int = 32, stride: Int = FrameBatch.slotSize) {
        precondition(capacity > 0 && capacity <= Self.maximumCount, "batch capacity out of range")
        self.capacity = capacity
        self.stride = stride
        storage = .allocate(byteCount: capacity * stride, alignment: 64)
        lengths = .allocate(capacity: capacity)
    }

    /// Slot `index` of the batch, header and frame, as long as what it holds.
    public func frame(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + index * stride, count: Int(lengths[index]))
    }

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
    }
}
