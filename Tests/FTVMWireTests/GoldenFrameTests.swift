import FTVMWire
import XCTest

/// Every field of the golden frames (GoldenFrames.swift), parsed; rewrites and builds compared
/// with bytes and checksums computed by the Python generator, not by FTVMWire.
final class GoldenFrameTests: XCTestCase {
    let client = MACAddress(0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01)
    let guest = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
    let clientIP = IPv4Address(10, 77, 0, 1)
    let guestIP = IPv4Address(10, 77, 0, 2)

    func testSYNEveryField() {
        withSegment(Golden.syn) { segment in
            XCTAssertEqual(segment.frame.count, 74)
            XCTAssertEqual(segment.ethernet.destination, guest)
            XCTAssertEqual(segment.ethernet.source, client)
            XCTAssertEqual(segment.ethernet.etherType, .ipv4)

            let ip = segment.ipv4
            XCTAssertEqual(ip.offset, 14)
            XCTAssertEqual(ip.headerLength, 20)
            XCTAssertEqual(ip.totalLength, 60)
            XCTAssertEqual(ip.typeOfService, 0)
            XCTAssertEqual(ip.identification, 0x1c46)
            XCTAssertTrue(ip.dontFragment)
            XCTAssertFalse(ip.moreFragments)
            XCTAssertEqual(ip.fragmentOffset, 0)
            XCTAssertFalse(ip.isFragment)
            XCTAssertEqual(ip.timeToLive, 64)
            XCTAssertEqual(ip.protocolNumber, .tcp)
            XCTAssertEqual(ip.headerChecksum, 0x09da)
            XCTAssertTrue(ip.isHeaderChecksumValid)
            XCTAssertEqual(ip.computeHeaderChecksum(), 0x09da)
            XCTAssertEqual(ip.source, clientIP)
            XCTAssertEqual(ip.destination, guestIP)
            XCTAssertEqual(ip.payloadOffset, 34)
            XCTAssertEqual(ip.payloadLength, 40)
            XCTAssertEqual(ip.trailingLength, 0)

            XCTAssertEqual(segment.offset, 34)
            XCTAssertEqual(segment.sourcePort, 40000)
            XCTAssertEqual(segment.destinationPort, 80)
            XCTAssertEqual(segment.sequenceNumber, SequenceNumber(3_456_789_012))
            XCTAssertEqual(segment.acknowledgmentNumber, SequenceNumber(0))
            XCTAssertEqual(segment.headerLength, 40)
            XCTAssertEqual(segment.flags, [.syn])
            XCTAssertEqual(segment.window, 64240)
            XCTAssertEqual(segment.checksum, 0x8f52)
            XCTAssertTrue(segment.isChecksumValid)
            XCTAssertEqual(segment.computeChecksum(), 0x8f52)
            XCTAssertEqual(segment.urgentPointer, 0)

            XCTAssertEqual(segment.options.maximumSegmentSize, 1460)
            XCTAssertTrue(segment.options.sackPermitted)
            XCTAssertEqual(segment.options.timestamps, TCPTimestamps(value: 123_456_789, echoReply: 0))
            XCTAssertEqual(segment.options.windowScale, 7)
            XCTAssertTrue(segment.options.sackBlocks.isEmpty)
            XCTAssertEqual(segment.optionOffsets.maximumSegmentSize, 56)
            XCTAssertEqual(segment.optionOffsets.timestamps, 62)
            XCTAssertEqual(segment.optionOffsets.windowScale, 73)
            XCTAssertNil(segment.optionOffsets.sackBlocks)

            XCTAssertEqual(segment.sequenceNumberOffset, 38)
            XCTAssertEqual(segment.acknowledgmentNumberOffset, 42)
            XCTAssertEqual(segment.windowOffset, 48)
            XCTAssertEqual(segment.checksumOffset, 50)
            XCTAssertEqual(segment.optionsOffset, 54)
            XCTAssertEqual(segment.payloadOffset, 74)
            XCTAssertEqual(segment.payloadLength, 0)
            XCTAssertEqual(segment.payload.count, 0)
            XCTAssertEqual(segment.segmentLength, 1)  // the SYN occupies one sequence number
            XCTAssertEqual(
                segment.fourTuple,
                FourTuple(sourceAddress: clientIP, sourcePort: 40000, destinationAddress: guestIP, destinationPort: 80))
            XCTAssertEqual(segment.fourTuple.reversed.sourcePort, 80)
        }
    }

    func testDataSegmentExcludesEthernetPadding() {
        withSegment(Golden.dataWithPadding) { segment in
            XCTAssertEqual(segment.frame.count, 60)
            XCTAssertEqual(segment.ipv4.totalLength, 44)
            XCTAssertEqual(segment.ipv4.trailingLength, 2)
            XCTAssertEqual(segment.ipv4.payload.count, 24)
            XCTAssertEqual(segment.ipv4.headerChecksum, 0x09e9)
            XCTAssertTrue(segment.ipv4.isHeaderChecksumValid)
            XCTAssertEqual(segment.sequenceNumber, SequenceNumber(3_456_789_013))
            XCTAssertEqual(segment.acknowledgmentNumber, SequenceNumber(2_000_000_001))
            XCTAssertEqual(segment.headerLength, 20)
            XCTAssertEqual(segment.flags, [.psh, .ack])
            XCTAssertEqual(segment.window, 502)
            XCTAssertEqual(segment.checksum, 0x3cd9)
            XCTAssertTrue(segment.isChecksumValid)  // would fail if the 0xEE padding were summed
            XCTAssertEqual(segment.computeChecksum(), 0x3cd9)
            XCTAssertEqual(segment.options, TCPOptions())
            XCTAssertEqual(segment.payloadOffset, 54)
            XCTAssertEqual(segment.payloadLength, 4)
            XCTAssertEqual(Array(segment.payload), Array("ok\r\n".utf8))
            XCTAssertEqual(segment.segmentLength, 4)
        }
    }

    func testServerDataWithTimestamps() {
        withSegment(Golden.serverData) { segment in
            XCTAssertEqual(segment.ethernet.source, guest)
            XCTAssertEqual(segment.ethernet.destination, client)
            XCTAssertEqual(segment.ipv4.identification, 0x7a10)
            XCTAssertEqual(segment.ipv4.source, guestIP)
            XCTAssertEqual(segment.sourcePort, 80)
            XCTAssertEqual(segment.destinationPort, 40000)
            XCTAssertEqual(segment.sequenceNumber, SequenceNumber(2_000_000_001))
            XCTAssertEqual(segment.acknowledgmentNumber, SequenceNumber(3_456_789_017))
            XCTAssertEqual(segment.headerLength, 32)
            XCTAssertEqual(segment.window, 509)
            XCTAssertEqual(segment.options.timestamps, TCPTimestamps(value: 99000, echoReply: 123_456_800))
            XCTAssertEqual(segment.optionOffsets.timestamps, 58)
            XCTAssertNil(segment.options.maximumSegmentSize)
            XCTAssertNil(segment.options.windowScale)
            XCTAssertFalse(segment.options.sackPermitted)
            XCTAssertEqual(Array(segment.payload), Array("HTTP/1.0 200 OK\r\n\r\n".utf8))
            XCTAssertEqual(segment.payloadOffset, 66)
            XCTAssertTrue(segment.isChecksumValid)
            XCTAssertTrue(segment.ipv4.isHeaderChecksumValid)
        }
    }

    func testACKWithTwoSACKBlocks() {
        withSegment(Golden.ackWithTwoSACKBlocks) { segment in
            XCTAssertEqual(segment.headerLength, 52)
            XCTAssertEqual(segment.flags, [.ack])
            XCTAssertEqual(segment.window, 501)
            XCTAssertEqual(segment.options.timestamps, TCPTimestamps(value: 123_456_900, echoReply: 99000))
            XCTAssertEqual(
                Array(segment.options.sackBlocks),
                [
                    SACKBlock(left: SequenceNumber(2_000_001_468), right: SequenceNumber(2_000_002_916)),
                    SACKBlock(left: SequenceNumber(2_000_004_364), right: SequenceNumber(2_000_005_812)),
                ])
            XCTAssertEqual(segment.optionOffsets.sackBlocks, 70)
            XCTAssertEqual(segment.optionOffsets.timestamps, 58)
            XCTAssertEqual(segment.payloadLength, 0)
            XCTAssertEqual(segment.segmentLength, 0)
            XCTAssertTrue(segment.isChecksumValid)
        }
    }

    func testTimestampsAtOddOffset() {
        withSegment(Golden.oddTimestamps) { segment in
            XCTAssertEqual(segment.optionOffsets.timestamps, 57)  // 23 bytes into the TCP header
            XCTAssertEqual(segment.options.timestamps, TCPTimestamps(value: 99100, echoReply: 123_456_900))
            XCTAssertEqual(Array(segment.payload), [UInt8(ascii: "x")])
            XCTAssertTrue(segment.isChecksumValid)
        }
    }

    func testIPv4OptionsMoveTheTCPHeader() {
        withSegment(Golden.ipOptionsFin) { segment in
            XCTAssertEqual(segment.ipv4.headerLength, 24)
            XCTAssertTrue(segment.ipv4.isHeaderChecksumValid)
            XCTAssertEqual(segment.offset, 38)
            XCTAssertEqual(segment.sourcePort, 40001)
            XCTAssertEqual(segment.destinationPort, 8080)
            XCTAssertEqual(segment.flags, [.fin, .ack])
            XCTAssertEqual(segment.segmentLength, 1)
            XCTAssertEqual(segment.payloadLength, 0)
            XCTAssertTrue(segment.isChecksumValid)
        }
    }

    func testARPRequest() {
        withClassified(Golden.arpRequest) { frameClass in
            guard case .arp(let arp) = frameClass else { return XCTFail("\(frameClass)") }
            XCTAssertEqual(arp.offset, 14)
            XCTAssertEqual(arp.operation, .request)
            XCTAssertEqual(arp.senderMAC, client)
            XCTAssertEqual(arp.senderIP, clientIP)
            XCTAssertEqual(arp.targetMAC, .zero)
            XCTAssertEqual(arp.targetIP, guestIP)
            XCTAssertFalse(arp.isGratuitous)
        }
    }

    func testGratuitousARP() {
        withClassified(Golden.gratuitousARP) { frameClass in
            guard case .arp(let arp) = frameClass else { return XCTFail("\(frameClass)") }
            XCTAssertEqual(arp.operation, .request)
            XCTAssertEqual(arp.senderMAC, guest)
            XCTAssertEqual(arp.senderIP, guestIP)
            XCTAssertEqual(arp.targetIP, guestIP)
            XCTAssertTrue(arp.isGratuitous)
        }
    }

    func testARPReply() {
        withClassified(Golden.arpReply) { frameClass in
            guard case .arp(let arp) = frameClass else { return XCTFail("\(frameClass)") }
            XCTAssertEqual(arp.operation, .reply)
            XCTAssertEqual(arp.senderMAC, guest)
            XCTAssertEqual(arp.senderIP, guestIP)
            XCTAssertEqual(arp.targetMAC, client)
            XCTAssertEqual(arp.targetIP, clientIP)
        }
    }

    // MARK: Rewrites against checksums computed by the Python generator

    func testSequenceRewriteMatchesPython() {
        let bytes = withSegment(Golden.syn) { segment in
            segment.setSequenceNumber(SequenceNumber(0xFFFF_FFF0))
            XCTAssertEqual(segment.checksum, Golden.synChecksumWithSeqFFFFFFF0)
            XCTAssertTrue(segment.isChecksumValid)
        }
        XCTAssertEqual(Array(bytes[38..<42]), [0xFF, 0xFF, 0xFF, 0xF0])
        XCTAssertEqual(Reference.u16(bytes, 50), Golden.synChecksumWithSeqFFFFFFF0)
    }

    func testSACKShiftMatchesPython() {
        let bytes = withSegment(Golden.ackWithTwoSACKBlocks) { segment in
            segment.shiftSACKBlocks(by: 0x8000_0010)
            XCTAssertEqual(segment.checksum, Golden.sackChecksumAfterShift80000010)
            XCTAssertEqual(segment.options.sackBlocks.first?.left, SequenceNumber(2_000_001_468 &+ 0x8000_0010))
        }
        XCTAssertEqual(Reference.u32(bytes, 70), 2_000_001_468 &+ 0x8000_0010)
        XCTAssertEqual(Reference.u32(bytes, 82), 2_000_005_812 &+ 0x8000_0010)  // wrapped past 2^32
        XCTAssertEqual(Reference.u16(bytes, 50), Golden.sackChecksumAfterShift80000010)
        // Re-parsing the rewritten frame gives the rewritten values.
        withSegment(bytes) { segment in
            XCTAssertEqual(segment.options.sackBlocks.last?.right, SequenceNumber(2_000_005_812 &+ 0x8000_0010))
            XCTAssertTrue(segment.isChecksumValid)
        }
    }

    func testOddOffsetTimestampRewriteMatchesPython() {
        let bytes = withSegment(Golden.oddTimestamps) { segment in
            XCTAssertTrue(segment.setTimestamps(TCPTimestamps(value: 0xDEAD_BEEF, echoReply: 7)))
            XCTAssertEqual(segment.checksum, Golden.oddChecksumAfterTimestamps)
        }
        XCTAssertEqual(Reference.u32(bytes, 57), 0xDEAD_BEEF)
        XCTAssertEqual(Reference.u32(bytes, 61), 7)
        XCTAssertEqual(Reference.u16(bytes, 50), Golden.oddChecksumAfterTimestamps)
    }

    // MARK: The builder reproduces the Python frames byte for byte

    func testBuilderReproducesGoldenSYN() throws {
        let spec = TCPFrameSpec(
            sourceMAC: client, destinationMAC: guest, source: clientIP, destination: guestIP, sourcePort: 40000,
            destinationPort: 80, sequenceNumber: SequenceNumber(3_456_789_012), acknowledgmentNumber: SequenceNumber(0),
            flags: .syn, window: 64240,
            options: TCPOptions(
                maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true,
                timestamps: TCPTimestamps(value: 123_456_789, echoReply: 0)),
            identification: 0x1c46)
        XCTAssertEqual(try build(spec), Golden.syn)
    }

    func testBuilderReproducesGoldenDataAndACKs() throws {
        var data = TCPFrameSpec(
            sourceMAC: client, destinationMAC: guest, source: clientIP, destination: guestIP, sourcePort: 40000,
            destinationPort: 80, sequenceNumber: SequenceNumber(3_456_789_013),
            acknowledgmentNumber: SequenceNumber(2_000_000_001), flags: [.psh, .ack], window: 502,
            identification: 0x1c47)
        XCTAssertEqual(try build(data, payload: Array("ok\r\n".utf8)), Array(Golden.dataWithPadding.prefix(58)))

        let response = TCPFrameSpec(
            sourceMAC: guest, destinationMAC: client, source: guestIP, destination: clientIP, sourcePort: 80,
            destinationPort: 40000, sequenceNumber: SequenceNumber(2_000_000_001),
            acknowledgmentNumber: SequenceNumber(3_456_789_017), flags: [.psh, .ack], window: 509,
            options: TCPOptions(timestamps: TCPTimestamps(value: 99000, echoReply: 123_456_800)),
            identification: 0x7a10)
        XCTAssertEqual(try build(response, payload: Array("HTTP/1.0 200 OK\r\n\r\n".utf8)), Golden.serverData)

        data.sequenceNumber = SequenceNumber(3_456_789_017)
        data.acknowledgmentNumber = SequenceNumber(2_000_000_020)
        data.flags = .ack
        data.window = 501
        data.identification = 0x1c48
        data.options.timestamps = TCPTimestamps(value: 123_456_900, echoReply: 99000)
        data.options.sackBlocks = try SACKBlocks([
            SACKBlock(left: SequenceNumber(2_000_001_468), right: SequenceNumber(2_000_002_916)),
            SACKBlock(left: SequenceNumber(2_000_004_364), right: SequenceNumber(2_000_005_812)),
        ])
        XCTAssertEqual(try build(data), Golden.ackWithTwoSACKBlocks)
    }

    func testARPBuildersReproduceGoldenFrames() throws {
        var buffer = [UInt8](repeating: 0xCC, count: 64)
        var length = try buffer.withUnsafeMutableBytes { frame in
            try FrameBuilder.arp(
                operation: .request, senderMAC: client, senderIP: clientIP, targetMAC: .zero, targetIP: guestIP,
                ethernetDestination: .broadcast, into: frame)
        }
        XCTAssertEqual(Array(buffer.prefix(length)), Golden.arpRequest)

        length = try buffer.withUnsafeMutableBytes { frame in
            try FrameBuilder.gratuitousARP(mac: guest, ip: guestIP, into: frame)
        }
        XCTAssertEqual(Array(buffer.prefix(length)), Golden.gratuitousARP)

        var request = Golden.arpRequest
        length = try request.withUnsafeMutableBytes { requestFrame in
            guard case .arp(let arp) = FrameClass.classify(requestFrame) else {
                XCTFail("not ARP")
                return 0
            }
            return try buffer.withUnsafeMutableBytes { frame in
                try FrameBuilder.arpReply(to: arp, mac: guest, into: frame)
            }
        }
        XCTAssertEqual(Array(buffer.prefix(length)), Golden.arpReply)
    }

    private func build(_ spec: TCPFrameSpec, payload: [UInt8] = []) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0xCC, count: 200)
        let length = try payload.withUnsafeBytes { payload in
            try buffer.withUnsafeMutableBytes { frame in try FrameBuilder.tcp(spec, payload: payload, into: frame) }
        }
        XCTAssertEqual(length, FrameBuilder.tcpFrameLength(spec, payloadLength: payload.count))
        return Array(buffer.prefix(length))
    }
}
