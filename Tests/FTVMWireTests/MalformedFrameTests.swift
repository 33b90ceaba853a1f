import FTVMWire
import XCTest

/// One regression test per malformed-length case: `nil`/`.truncated` for a frame that ends before
/// a fixed header, a specific `WireError` for a length field that lies. Offsets below are into
/// the golden frames: IPv4 at 14, TCP at 34, TCP options at 54.
final class MalformedFrameTests: XCTestCase {
    // MARK: Too short

    func testTruncatedEthernet() {
        XCTAssertEqual(outcome([]), .truncated(.ethernet))
        XCTAssertEqual(outcome(Array(Golden.syn.prefix(13))), .truncated(.ethernet))
        XCTAssertEqual(outcome(Array(Golden.syn.prefix(14))), .truncated(.ipv4))  // header alone is fine
        var empty: [UInt8] = []
        empty.withUnsafeMutableBytes { XCTAssertNil(EthernetView(frame: $0)) }
    }

    func testTruncatedIPv4Header() throws {
        XCTAssertEqual(outcome(Array(Golden.syn.prefix(33))), .truncated(.ipv4))
        var short = Array(Golden.syn.prefix(33))
        try short.withUnsafeMutableBytes { XCTAssertNil(try IPv4View(frame: $0)) }
    }

    func testTruncatedARP() {
        XCTAssertEqual(outcome(Array(Golden.arpRequest.prefix(41))), .truncated(.arp))
        var short = Array(Golden.arpRequest.prefix(41))
        short.withUnsafeMutableBytes { XCTAssertNil(ARPView(frame: $0)) }
    }

    func testIPPacketTooShortForTCPHeader() {
        // Total length 39: the IP packet holds only 19 bytes of TCP header.
        var frame = Golden.dataWithPadding
        frame.put16(39, at: 16)
        XCTAssertEqual(outcome(frame), .truncated(.tcp))
    }

    // MARK: IPv4 lengths

    func testIPv4BadVersion() {
        var frame = Golden.syn
        frame[14] = 0x65
        XCTAssertEqual(outcome(frame), .illegal(.ipv4BadVersion(6)))
    }

    func testIHLBelowFive() {
        var frame = Golden.syn
        frame[14] = 0x44
        XCTAssertEqual(outcome(frame), .illegal(.ipv4HeaderLengthTooSmall(ihl: 4)))
        frame[14] = 0x40
        XCTAssertEqual(outcome(frame), .illegal(.ipv4HeaderLengthTooSmall(ihl: 0)))
    }

    func testIHLBeyondFrame() {
        // IHL 15 = 60 bytes, but only 40 bytes follow the Ethernet header.
        var frame = Array(Golden.syn.prefix(54))
        frame[14] = 0x4F
        XCTAssertEqual(outcome(frame), .illegal(.ipv4HeaderBeyondFrame(headerLength: 60, available: 40)))
    }

    func testTotalLengthBelowHeader() {
        var frame = Golden.syn
        frame.put16(19, at: 16)
        XCTAssertEqual(outcome(frame), .illegal(.ipv4TotalLengthBelowHeader(totalLength: 19, headerLength: 20)))
        frame.put16(0, at: 16)
        XCTAssertEqual(outcome(frame), .illegal(.ipv4TotalLengthBelowHeader(totalLength: 0, headerLength: 20)))
        // With IPv4 options the bound moves with IHL.
        var withOptions = Golden.ipOptionsFin
        withOptions.put16(23, at: 16)
        XCTAssertEqual(
            outcome(withOptions), .illegal(.ipv4TotalLengthBelowHeader(totalLength: 23, headerLength: 24)))
    }

    func testTotalLengthBeyondFrame() {
        var frame = Golden.syn
        frame.put16(61, at: 16)
        XCTAssertEqual(outcome(frame), .illegal(.ipv4TotalLengthBeyondFrame(totalLength: 61, available: 60)))
        frame.put16(0xFFFF, at: 16)
        XCTAssertEqual(outcome(frame), .illegal(.ipv4TotalLengthBeyondFrame(totalLength: 65535, available: 60)))
    }

    // MARK: TCP lengths

    func testDataOffsetBelowFive() {
        var frame = Golden.syn
        frame[46] = 0x40
        XCTAssertEqual(outcome(frame), .illegal(.tcpDataOffsetTooSmall(dataOffset: 4)))
        frame[46] = 0x00
        XCTAssertEqual(outcome(frame), .illegal(.tcpDataOffsetTooSmall(dataOffset: 0)))
    }

    func testDataOffsetBeyondPacket() {
        var frame = Golden.syn
        frame[46] = 0xF0  // 60 bytes of header in a 40-byte TCP segment
        XCTAssertEqual(outcome(frame), .illegal(.tcpHeaderBeyondPacket(headerLength: 60, available: 40)))
        // The padding after the IP packet does not count as room for the header.
        var padded = Golden.dataWithPadding
        padded[46] = 0x60  // 24 bytes, the segment is 24 bytes: fine, the "options" are the payload
        XCTAssertEqual(outcome(padded), .illegal(.tcpOptionBeyondHeader(kind: 0x6f, offset: 20)))
        padded[46] = 0x70  // 28 bytes: would need the 2 padding bytes and more
        XCTAssertEqual(outcome(padded), .illegal(.tcpHeaderBeyondPacket(headerLength: 28, available: 24)))
    }

    // MARK: TCP options

    func testOptionLengthZero() {
        var frame = Golden.syn
        frame[55] = 0  // MSS length 0
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionLengthTooSmall(kind: 2, length: 0)))
    }

    func testOptionLengthOne() {
        var frame = Golden.syn
        frame[55] = 1
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionLengthTooSmall(kind: 2, length: 1)))
        // Unknown kinds too: a length below 2 would make a parser loop.
        frame = Golden.syn
        frame[70] = 0xFD  // the NOP becomes an experimental kind, its "length" is 3 (from WS)
        frame[71] = 1
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionLengthTooSmall(kind: 0xFD, length: 1)))
    }

    func testOptionRunningPastHeader() {
        var frame = Golden.syn
        frame[72] = 4  // window scale claims 4 bytes, 3 remain
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionBeyondHeader(kind: 3, offset: 37)))
        // The length byte itself outside the header: the last option byte is a bare kind.
        frame = Golden.syn
        frame[71] = 1  // NOP
        frame[72] = 1  // NOP
        frame[73] = 30  // MPTCP kind, no room for its length
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionBeyondHeader(kind: 30, offset: 39)))
    }

    func testSACKOptionBadLength() {
        for length: UInt8 in [2, 9, 17, 3] {
            var frame = Golden.ackWithTwoSACKBlocks
            frame[69] = length
            XCTAssertEqual(
                outcome(frame), .illegal(.tcpOptionBadLength(kind: 5, length: length)), "SACK length \(length)")
        }
        // Five blocks (42 bytes) cannot fit in any TCP header.
        var frame = Golden.ackWithTwoSACKBlocks
        frame[69] = 42
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionBeyondHeader(kind: 5, offset: 34)))
    }

    func testTimestampOptionBadLength() {
        for length: UInt8 in [8, 9, 2] {
            var frame = Golden.syn
            frame[61] = length
            XCTAssertEqual(
                outcome(frame), .illegal(.tcpOptionBadLength(kind: 8, length: length)), "TS length \(length)")
        }
        var frame = Golden.syn
        frame[61] = 11
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionBadLength(kind: 8, length: 11)))
    }

    func testOtherKnownOptionsBadLength() {
        var frame = Golden.syn
        frame[55] = 3  // MSS
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionBadLength(kind: 2, length: 3)))
        frame = Golden.syn
        frame[72] = 2  // window scale, then a stray byte 7 = kind 7 without length
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionBadLength(kind: 3, length: 2)))
        frame = Golden.syn
        frame[59] = 3  // SACK-permitted
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionBadLength(kind: 4, length: 3)))
    }

    func testDuplicateTimestampsRefused() {
        // NOP NOP TS becomes TS' … the SACK option's NOP NOP + kind/len: replace the SACK
        // option with a second timestamps option.
        var frame = Golden.ackWithTwoSACKBlocks
        frame[68] = 8
        frame[69] = 10  // TS, 10 bytes, then the rest of the old SACK blocks (8 bytes) …
        frame[78] = 1
        frame[79] = 1
        frame.replaceSubrange(80..<86, with: [1, 1, 1, 1, 1, 1])
        XCTAssertEqual(outcome(frame), .illegal(.tcpOptionDuplicate(kind: 8)))
    }

    // MARK: Well-formed oddities that must parse

    func testUnknownOptionSkippedAndEOLEndsList() {
        var frame = Golden.syn
        frame.replaceSubrange(70..<74, with: [0xFD, 4, 0xAB, 0xCD])  // RFC 6994 experimental option
        withSegment(frame) { segment in
            XCTAssertEqual(segment.options.maximumSegmentSize, 1460)
            XCTAssertNil(segment.options.windowScale)
            XCTAssertNotNil(segment.options.timestamps)
        }
        frame = Golden.syn
        frame.replaceSubrange(70..<74, with: [0, 0xFF, 0xFF, 0xFF])  // EOL, then junk that is ignored
        withSegment(frame) { segment in
            XCTAssertNil(segment.options.windowScale)
            XCTAssertEqual(segment.options.timestamps?.value, 123_456_789)
        }
    }

    func testNonTCPAndFragments() {
        var frame = Golden.dataWithPadding
        frame[23] = 17  // UDP
        XCTAssertEqual(outcome(frame), .other(17))

        frame = Golden.syn
        frame[20] = 0x20  // MF, offset 0: the first fragment
        XCTAssertEqual(outcome(frame), .fragment)
        frame[20] = 0x00
        frame[21] = 0x05  // offset 40 bytes: a later fragment, whose "TCP header" is payload
        frame[46] = 0x00  // that would be an illegal data offset if parsed as TCP
        XCTAssertEqual(outcome(frame), .fragment)
        frame.withUnsafeMutableBytes { buffer in
            guard case .ipv4Fragment(let ip) = FrameClass.classify(buffer) else { return XCTFail() }
            XCTAssertEqual(ip.fragmentOffset, 40)
            XCTAssertFalse(ip.moreFragments)
            XCTAssertFalse(ip.dontFragment)
        }
    }

    func testVLANAndOtherEtherTypes() {
        var frame = Golden.syn
        frame.replaceSubrange(12..<14, with: [0x81, 0x00])
        XCTAssertEqual(outcome(frame), .unsupported(.vlanTagged(.vlan)))
        frame.replaceSubrange(12..<14, with: [0x88, 0xA8])
        XCTAssertEqual(outcome(frame), .unsupported(.vlanTagged(.serviceVLAN)))
        frame.replaceSubrange(12..<14, with: [0x86, 0xDD])
        XCTAssertEqual(outcome(frame), .nonIPv4(0x86DD))
        frame.replaceSubrange(12..<14, with: [0x00, 0x2E])  // an 802.3 length field
        XCTAssertEqual(outcome(frame), .nonIPv4(0x002E))
    }

    func testARPForOtherProtocolsUnsupported() {
        var frame = Golden.arpRequest
        frame[15] = 6  // hardware type IEEE 802
        guard case .unsupported(.arpFormat(let what)) = outcome(frame) else { return XCTFail("\(outcome(frame))") }
        XCTAssertEqual(what.hardwareType, 6)
        XCTAssertEqual(what.protocolType, 0x0800)
        frame = Golden.arpRequest
        frame[18] = 8  // hardware length 8
        guard case .unsupported(.arpFormat(let other)) = outcome(frame) else { return XCTFail() }
        XCTAssertEqual(other.hardwareLength, 8)
    }

    func testKindIndexesCounters() {
        var counters = [Int](repeating: 0, count: FrameClass.Kind.allCases.count)
        for bytes in [Golden.syn, Golden.arpRequest, [], Array(Golden.syn.prefix(20))] {
            var copy = bytes
            copy.withUnsafeMutableBytes { counters[FrameClass.classify($0).kind.rawValue] += 1 }
        }
        XCTAssertEqual(counters[FrameClass.Kind.ipv4TCP.rawValue], 1)
        XCTAssertEqual(counters[FrameClass.Kind.arp.rawValue], 1)
        XCTAssertEqual(counters[FrameClass.Kind.truncated.rawValue], 2)
    }
}
