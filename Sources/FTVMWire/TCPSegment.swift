/// The control bits of a TCP header (byte 13; RFC 9293 §3.1, RFC 3168 for ECE/CWR).
public struct TCPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)

    public var description: String {
        let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]
        var parts: [String] = []
        for bit in 0..<8 where rawValue & (1 << bit) != 0 { parts.append(names[bit]) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// The identity of one TCP connection as seen in one direction.
public struct FourTuple: Hashable, Sendable, CustomStringConvertible {
    public var sourceAddress: IPv4Address
    public var sourcePort: UInt16
    public var destinationAddress: IPv4Address
    public var destinationPort: UInt16

    public init(
        sourceAddress: IPv4Address, sourcePort: UInt16, destinationAddress: IPv4Address, destinationPort: UInt16
    ) {
        self.sourceAddress = sourceAddress
        self.sourcePort = sourcePort
        self.destinationAddress = destinationAddress
        self.destinationPort = destinationPort
    }

    /// The same connection seen from the other end.
    public var reversed: FourTuple {
        FourTuple(
            sourceAddress: destinationAddress, sourcePort: destinationPort, destinationAddress: sourceAddress,
            destinationPort: sourcePort)
    }

    public var description: String { "\(sourceAddress):\(sourcePort)→\(destinationAddress):\(destinationPort)" }
}

/// One TCP segment in an Ethernet/IPv4 frame, parsed once: everything the connection log and
/// replay need, and where each rewritable field sits so it can be changed in place.
///
/// The view borrows the frame (no copy, no allocation) and is valid only while the buffer is.
/// Its rewriting methods change the frame and keep the TCP checksum correct with RFC 1624
/// incremental updates — the cost is a few words, whatever the payload size. They are
/// `mutating` so the parsed values this view reports stay equal to what the frame holds.
public struct TCPSegmentView {
    /// A header without options.
    public static let minimumHeaderLength = 20

    /// The Ethernet header: the client's MAC is what replay's frames must be addressed to.
    public let ethernet: EthernetView
    /// The IPv4 header; its Total Length bounds the segment.
    public let ipv4: IPv4View
    /// Where the TCP header starts in the frame.
    public let offset: Int
    /// Data Offset × 4, 20 to 60, within the IP packet.
    public let headerLength: Int
    public private(set) var sourcePort: UInt16
    public private(set) var destinationPort: UInt16
    public private(set) var sequenceNumber: SequenceNumber
    public private(set) var acknowledgmentNumber: SequenceNumber
    public private(set) var flags: TCPFlags
    /// The window field as sent, not shifted by the window scale (RFC 7323 §2.3).
    public private(set) var window: UInt16
    /// The checksum field as it is in the frame now, after any rewrite through this view.
    public private(set) var checksum: UInt16
    /// Whether the checksum field holds only the pseudo-header's sum, to be finished over the
    /// segment by whoever sends it on (a virtio-net header's NEEDS_CSUM, set by the caller that
    /// read the header). Rewrites then leave the field alone: the final sum covers the new bytes.
    public var checksumIsPartial = false
    public let urgentPointer: UInt16
    /// The parsed options; rewrites through this view keep them equal to the frame.
    public private(set) var options: TCPOptions
    /// Where the MSS, window scale, timestamps and SACK blocks sit in the frame.
    public let optionOffsets: TCPOptionOffsets

    /// Parses the TCP header in `ipv4`'s payload.
    ///
    /// - Returns: `nil` when the IP packet is not an unfragmented TCP packet or is too short for a
    ///   20-byte TCP header (`FrameClass.classify` checks the first two before calling this).
    /// - Throws: `WireError` for a Data Offset below 5 or past the packet, or malformed options.
    public init?(ethernet: EthernetView, ipv4: IPv4View) throws(WireError) {
        guard ipv4.protocolNumber == .tcp, !ipv4.isFragment else { return nil }
        let available = ipv4.payloadLength
        guard available >= Self.minimumHeaderLength else { return nil }
        let frame = ipv4.frame
        let offset = ipv4.payloadOffset
        let dataOffset = frame.wireU8(at: offset + 12) >> 4
        guard dataOffset >= 5 else { throw .tcpDataOffsetTooSmall(dataOffset: dataOffset) }
        let headerLength = Int(dataOffset) * 4
        guard headerLength <= available else {
            throw .tcpHeaderBeyondPacket(headerLength: headerLength, available: available)
        }
        (options, optionOffsets) = try TCPOptions.parse(
            frame: frame, start: offset + Self.minimumHeaderLength, end: offset + headerLength, headerStart: offset)
        self.ethernet = ethernet
        self.ipv4 = ipv4
        self.offset = offset
        self.headerLength = headerLength
        sourcePort = frame.wireU16(at: offset)
        destinationPort = frame.wireU16(at: offset + 2)
        sequenceNumber = SequenceNumber(frame.wireU32(at: offset + 4))
        acknowledgmentNumber = SequenceNumber(frame.wireU32(at: offset + 8))
        flags = TCPFlags(rawValue: frame.wireU8(at: offset + 13))
        window = frame.wireU16(at: offset + 14)
        checksum = frame.wireU16(at: offset + 16)
        urgentPointer = frame.wireU16(at: offset + 18)
    }

    /// The whole frame.
    public var frame: UnsafeMutableRawBufferPointer { ipv4.frame }

    /// Source and destination address and port, in this segment's direction.
    public var fourTuple: FourTuple {
        FourTuple(
            sourceAddress: ipv4.source, sourcePort: sourcePort, destinationAddress: ipv4.destination,
            destinationPort: destinationPort)
    }

    // MARK: Where the fields sit (absolute offsets in the frame)

    /// The 4 bytes of the sequence number (always at an even offset of the segment).
    public var sequenceNumberOffset: Int { offset + 4 }
    public var acknowledgmentNumberOffset: Int { offset + 8 }
    public var windowOffset: Int { offset + 14 }
    /// The 2 bytes of the TCP checksum.
    public var checksumOffset: Int { offset + 16 }
    /// The first option byte (equal to `payloadOffset` when there are none).
    public var optionsOffset: Int { offset + Self.minimumHeaderLength }

    // MARK: Payload

    /// Where the payload starts in the frame.
    public var payloadOffset: Int { offset + headerLength }
    /// Payload bytes, per the IPv4 Total Length (Ethernet padding excluded).
    public var payloadLength: Int { ipv4.payloadLength - headerLength }
    /// The payload, padding excluded.
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: frame[payloadOffset..<(payloadOffset + payloadLength)])
    }
    /// The sequence space the segment occupies (SEG.LEN, RFC 9293 §3.4): payload plus one each for
    /// SYN and FIN.
    public var segmentLength: UInt32 {
        UInt32(payloadLength) + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
    }

    // MARK: Checksums

    /// The TCP segment as the checksum covers it: header and payload.
    private var segmentBytes: UnsafeRawBufferPointer { frame.wireSlice(offset, ipv4.payloadLength) }

    /// The checksum this segment should carry, computed from scratch over the pseudo-header,
    /// header and payload.
    public func computeChecksum() -> UInt16 {
        InternetChecksum.tcp(source: ipv4.source, destination: ipv4.destination, segment: segmentBytes)
    }

    /// Whether the checksum field verifies. Healthy traffic carries complete checksums unless its
    /// virtio-net header says the checksum is partial, and a partial one counts as valid.
    public var isChecksumValid: Bool {
        // (A partial checksum is finished by the sender's own kernel: nothing to verify yet.)
        if checksumIsPartial { return true }
        let pseudo = InternetChecksum.tcpPseudoHeaderSum(
            source: ipv4.source, destination: ipv4.destination, tcpLength: ipv4.payloadLength)
        return InternetChecksum.combine(pseudo, InternetChecksum.sum(segmentBytes)) == 0xFFFF
    }

    /// Writes a freshly computed checksum. For frames assembled by hand; rewriting does not need it.
    public mutating func recomputeChecksum() {
        checksum = computeChecksum()
        frame.setWireU16(checksum, at: checksumOffset)
    }

    // MARK: Rewriting in place

    /// Replaces the sequence number (the replay's server→client `seq − delta`).
    public mutating func setSequenceNumber(_ new: SequenceNumber) {
        var adjuster = beginAdjusting()
        replace32(at: sequenceNumberOffset, with: new.rawValue, in: &adjuster)
        finish(adjuster)
        sequenceNumber = new
    }

    /// Replaces the acknowledgment number (the replay's client→server `ack + delta`).
    public mutating func setAcknowledgmentNumber(_ new: SequenceNumber) {
        var adjuster = beginAdjusting()
        replace32(at: acknowledgmentNumberOffset, with: new.rawValue, in: &adjuster)
        finish(adjuster)
        acknowledgmentNumber = new
    }

    /// Clears `removed` from the flags, e.g. a FIN the relay holds back while the data that
    /// came with it goes on.
    public mutating func clearFlags(_ removed: TCPFlags) {
        let field = offset + 12  // data offset, reserved bits and flags: one 16-bit word
        var adjuster = beginAdjusting()
        let old = frame.wireU16(at: field)
        let new = old & ~UInt16(removed.rawValue)
        adjuster.replace(old, with: new)
        frame.setWireU16(new, at: field)
        finish(adjuster)
        flags.subtract(removed)
    }

    /// Replaces the ports: a relay server's connection that a new guest opened again after a
    /// failover uses another local port than the one the end server knows (docs/relay-servers.md).
    public mutating func setPorts(source: UInt16, destination: UInt16) {
        var adjuster = beginAdjusting()
        adjuster.replace(frame.wireU16(at: offset), with: source)
        adjuster.replace(frame.wireU16(at: offset + 2), with: destination)
        frame.setWireU16(source, at: offset)
        frame.setWireU16(destination, at: offset + 2)
        finish(adjuster)
        sourcePort = source
        destinationPort = destination
    }

    /// Replaces the (unscaled) window field.
    public mutating func setWindow(_ new: UInt16) {
        var adjuster = beginAdjusting()
        adjuster.replace(frame.wireU16(at: windowOffset), with: new)
        frame.setWireU16(new, at: windowOffset)
        finish(adjuster)
        window = new
    }

    /// Adds `delta` (mod 2^32) to both edges of every SACK block — the client's SACKs refer to the
    /// primary's sequence space and must be moved into the backup's. Pass `0 &- delta` to move
    /// the other way. Does nothing when the segment has no SACK option.
    public mutating func shiftSACKBlocks(by delta: UInt32) {
        guard let start = optionOffsets.sackBlocks, !options.sackBlocks.isEmpty else { return }
        var adjuster = beginAdjusting()
        for index in options.sackBlocks.indices {
            let edge = start + 8 * index
            let left = options.sackBlocks[index].left &+ delta
            let right = options.sackBlocks[index].right &+ delta
            replace32(at: edge, with: left.rawValue, in: &adjuster)
            replace32(at: edge + 4, with: right.rawValue, in: &adjuster)
            options.sackBlocks[index] = SACKBlock(left: left, right: right)
        }
        finish(adjuster)
    }

    /// Replaces TSval and TSecr (RFC 7323), so that after a failover the client's PAWS check
    /// (RFC 7323 §5) still sees monotonic values.
    ///
    /// - Returns: `false`, changing nothing, when the segment carries no timestamps option.
    @discardableResult
    public mutating func setTimestamps(_ new: TCPTimestamps) -> Bool {
        guard let start = optionOffsets.timestamps else { return false }
        var adjuster = beginAdjusting()
        replace32(at: start, with: new.value, in: &adjuster)
        replace32(at: start + 4, with: new.echoReply, in: &adjuster)
        finish(adjuster)
        options.timestamps = new
        return true
    }

    private func beginAdjusting() -> InternetChecksum.Adjuster {
        InternetChecksum.Adjuster(frame.wireU16(at: checksumOffset))
    }

    /// Writes a 32-bit field and records the change. Options may put a field at an odd offset
    /// from the segment start, which the checksum sees byte-swapped.
    private func replace32(at fieldOffset: Int, with new: UInt32, in adjuster: inout InternetChecksum.Adjuster) {
        adjuster.replace(frame.wireU32(at: fieldOffset), with: new, oddOffset: (fieldOffset - offset) & 1 != 0)
        frame.setWireU32(new, at: fieldOffset)
    }

    private mutating func finish(_ adjuster: InternetChecksum.Adjuster) {
        guard !checksumIsPartial else { return }
        checksum = adjuster.checksum
        frame.setWireU16(checksum, at: checksumOffset)
    }
}
