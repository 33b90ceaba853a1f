/// The 10-byte `struct virtio_net_hdr` (virtio 1.x §5.1.6) that precedes every frame on the
/// relay's offloading links (a tap opened with IFF_VNET_HDR, an AF_PACKET socket with
/// PACKET_VNET_HDR). Multi-byte fields are in the host's (little-endian) order.
///
/// What the relay needs from it: whether the TCP checksum field holds only the pseudo-header
/// sum (`needsChecksum`: the checksum is finished by whoever sends the frame on, so a rewrite of
/// covered bytes must leave the field alone), and for a super-frame, the segment size the
/// kernel cuts it at.
public struct VirtioNetHeader: Equatable, Sendable {
    public static let size = 10

    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: checksum from `checksumStart`, stored at `checksumOffset`
    /// past it, not computed yet.
    public static let needsChecksumFlag: UInt8 = 1
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the receiver verified the checksum.
    public static let dataValidFlag: UInt8 = 2

    public enum SegmentationType: UInt8, Sendable {
        case none = 0
        case tcpIPv4 = 1
        case udp = 3
        case tcpIPv6 = 4
    }

    public var flags: UInt8
    /// The GSO type byte; bit 7 (`VIRTIO_NET_HDR_GSO_ECN`) marks an ECN-CWR super-frame.
    public var gsoType: UInt8
    public var headerLength: UInt16
    public var segmentSize: UInt16
    public var checksumStart: UInt16
    public var checksumOffset: UInt16

    /// No offload: a complete frame with a complete checksum (what the relay's own frames carry).
    public static let plain = VirtioNetHeader(
        flags: 0, gsoType: 0, headerLength: 0, segmentSize: 0, checksumStart: 0, checksumOffset: 0)

    public init(
        flags: UInt8, gsoType: UInt8, headerLength: UInt16, segmentSize: UInt16, checksumStart: UInt16,
        checksumOffset: UInt16
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.segmentSize = segmentSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// Reads the header at the start of `bytes`; nil when fewer than 10 bytes are there.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.size else { return nil }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        self.init(
            flags: bytes[0], gsoType: bytes[1], headerLength: u16(2), segmentSize: u16(4), checksumStart: u16(6),
            checksumOffset: u16(8))
    }

    /// Writes the header into the first 10 bytes of `bytes`.
    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.size, "no room for a virtio-net header")
        func put(_ value: UInt16, _ at: Int) {
            bytes[at] = UInt8(truncatingIfNeeded: value)
            bytes[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
        }
        bytes[0] = flags
        bytes[1] = gsoType
        put(headerLength, 2)
        put(segmentSize, 4)
        put(checksumStart, 6)
        put(checksumOffset, 8)
    }

    public var needsChecksum: Bool { flags & Self.needsChecksumFlag != 0 }

    /// The segmentation the frame asks for (nil for a type this relay does not know).
    public var segmentation: SegmentationType? { SegmentationType(rawValue: gsoType & 0x7F) }

    /// Whether the frame is a super-frame the kernel will cut into `segmentSize`-byte segments.
    public var isSuperFrame: Bool { gsoType & 0x7F != SegmentationType.none.rawValue }
}
