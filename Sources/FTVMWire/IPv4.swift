/// The IPv4 Protocol field (IANA "Assigned Internet Protocol Numbers").
public struct IPProtocol: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public static let icmp = IPProtocol(rawValue: 1)
    public static let tcp = IPProtocol(rawValue: 6)
    public static let udp = IPProtocol(rawValue: 17)
}

/// The IPv4 header of a frame (RFC 791 §3.1), validated so that every length derived from it
/// is inside the frame.
///
/// The lengths are checked in the order that makes each later subtraction safe: version, IHL ≥ 5,
/// IHL × 4 within the frame, Total Length ≥ IHL × 4, Total Length within the frame. What follows
/// Total Length in the frame is Ethernet padding and belongs to no layer.
public struct IPv4View {
    /// A header without options.
    public static let minimumHeaderLength = 20

    /// The whole frame (Ethernet header included).
    public let frame: UnsafeMutableRawBufferPointer
    /// Where the IPv4 header starts in the frame.
    public let offset: Int
    /// IHL × 4, 20 to 60.
    public let headerLength: Int
    /// Header plus payload, from the Total Length field; never more than the frame holds.
    public let totalLength: Int
    /// DSCP and ECN.
    public let typeOfService: UInt8
    /// The IP ID; only meaningful for reassembly (RFC 6864), so it is never rewritten.
    public let identification: UInt16
    /// Flags (3 bits) and Fragment Offset (13 bits, in 8-byte units) as on the wire.
    public let flagsAndFragmentOffset: UInt16
    public let timeToLive: UInt8
    public let protocolNumber: IPProtocol
    /// The header checksum as received; see `isHeaderChecksumValid`.
    public let headerChecksum: UInt16
    public let source: IPv4Address
    public let destination: IPv4Address

    /// Parses the IPv4 header at `offset` (14: right after an Ethernet header).
    ///
    /// - Returns: `nil` when fewer than 20 bytes follow `offset`.
    /// - Throws: `WireError` for a version other than 4 or lengths that contradict each other or
    ///   the frame.
    public init?(frame: UnsafeMutableRawBufferPointer, offset: Int = EthernetView.headerLength) throws(WireError) {
        guard offset >= 0, frame.count >= offset, frame.count - offset >= Self.minimumHeaderLength else {
            return nil
        }
        let available = frame.count - offset
        let versionAndIHL = frame.wireU8(at: offset)
        guard versionAndIHL >> 4 == 4 else { throw .ipv4BadVersion(versionAndIHL >> 4) }
        let ihl = versionAndIHL & 0x0F
        guard ihl >= 5 else { throw .ipv4HeaderLengthTooSmall(ihl: ihl) }
        let headerLength = Int(ihl) * 4
        guard headerLength <= available else {
            throw .ipv4HeaderBeyondFrame(headerLength: headerLength, available: available)
        }
        let totalLength = Int(frame.wireU16(at: offset + 2))
        guard totalLength >= headerLength else {
            throw .ipv4TotalLengthBelowHeader(totalLength: totalLength, headerLength: headerLength)
        }
        guard totalLength <= available else {
            throw .ipv4TotalLengthBeyondFrame(totalLength: totalLength, available: available)
        }
        self.frame = frame
        self.offset = offset
        self.headerLength = headerLength
        self.totalLength = totalLength
        typeOfService = frame.wireU8(at: offset + 1)
        identification = frame.wireU16(at: offset + 4)
        flagsAndFragmentOffset = frame.wireU16(at: offset + 6)
        timeToLive = frame.wireU8(at: offset + 8)
        protocolNumber = IPProtocol(rawValue: frame.wireU8(at: offset + 9))
        headerChecksum = frame.wireU16(at: offset + 10)
        source = frame.wireIPv4(at: offset + 12)
        destination = frame.wireIPv4(at: offset + 16)
    }

    /// The DF flag: the sender forbids fragmentation (and does path MTU discovery).
    public var dontFragment: Bool { flagsAndFragmentOffset & 0x4000 != 0 }
    /// The MF flag: more fragments of this datagram follow.
    public var moreFragments: Bool { flagsAndFragmentOffset & 0x2000 != 0 }
    /// The fragment's position in the datagram, in bytes.
    public var fragmentOffset: Int { Int(flagsAndFragmentOffset & 0x1FFF) * 8 }
    /// Whether this packet is a piece of a larger datagram (first, middle or last). A fragment's
    /// payload is not a whole TCP segment and must not be parsed as one.
    public var isFragment: Bool { flagsAndFragmentOffset & 0x3FFF != 0 }

    /// Where the IP payload starts in the frame.
    public var payloadOffset: Int { offset + headerLength }
    /// Total Length minus the header: the payload without Ethernet padding.
    public var payloadLength: Int { totalLength - headerLength }
    /// Bytes after the IP packet (Ethernet padding to 60 bytes, or junk).
    public var trailingLength: Int { frame.count - offset - totalLength }
    /// The IP payload, padding excluded.
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: frame[payloadOffset..<(offset + totalLength)])
    }

    /// Whether the header checksum verifies (the header, checksum included, sums to 0xFFFF).
    /// The relay does not require it; it is here for tests and diagnostics.
    public var isHeaderChecksumValid: Bool {
        InternetChecksum.checksum(frame.wireSlice(offset, headerLength)) == 0
    }

    /// The checksum this header should carry.
    public func computeHeaderChecksum() -> UInt16 {
        InternetChecksum.ipv4Header(frame.wireSlice(offset, headerLength))
    }
}
