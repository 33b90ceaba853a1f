import FTVMWire
import SeededRandom
import XCTest

final class BuilderTests: XCTestCase {
    /// build → parse → the same fields, over random specs; checksums checked by the reference.
    func testRoundTripRandomSpecs() throws {
        var rng = SplitMix64(seed: 0xB01D)
        var buffer = [UInt8](repeating: 0, count: 2048)
        for iteration in 0..<5000 {
            var options = TCPOptions()
            if Bool.random(using: &rng) { options.maximumSegmentSize = UInt16.random(in: 0...UInt16.max, using: &rng) }
            if Bool.random(using: &rng) { options.windowScale = UInt8.random(in: 0...14, using: &rng) }
            options.sackPermitted = Bool.random(using: &rng)
            if Bool.random(using: &rng) {
                options.timestamps = TCPTimestamps(
                    value: interesting32(using: &rng), echoReply: interesting32(using: &rng))
            }
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let left = SequenceNumber(interesting32(using: &rng))
                try options.sackBlocks.append(
                    SACKBlock(left: left, right: left &+ UInt32.random(in: 1...5000, using: &rng)))
            }
            let spec = TCPFrameSpec(
                sourceMAC: MACAddress(rawValue: rng.next()), destinationMAC: MACAddress(rawValue: rng.next()),
                source: IPv4Address(rawValue: interesting32(using: &rng)),
                destination: IPv4Address(rawValue: interesting32(using: &rng)),
                sourcePort: UInt16.random(in: 0...UInt16.max, using: &rng),
                destinationPort: UInt16.random(in: 0...UInt16.max, using: &rng),
                sequenceNumber: SequenceNumber(interesting32(using: &rng)),
                acknowledgmentNumber: SequenceNumber(interesting32(using: &rng)),
                flags: TCPFlags(rawValue: UInt8.random(in: 0...255, using: &rng)),
                window: UInt16.random(in: 0...UInt16.max, using: &rng), options: options,
                identification: UInt16.random(in: 0...UInt16.max, using: &rng),
                urgentPointer: UInt16.random(in: 0...UInt16.max, using: &rng))
            let payload = (0..<Int.random(in: 0...1400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng)
            }

            let length: Int
            do {
                length = try payload.withUnsafeBytes { payload in
                    try buffer.withUnsafeMutableBytes { try FrameBuilder.tcp(spec, payload: payload, into: $0) }
                }
            } catch {
                XCTAssertEqual(error as? WireError, .tcpOptionsTooLong(length: options.encodedLength))
                XCTAssertGreaterThan(options.encodedLength, 40)
                continue
            }
            XCTAssertLessThanOrEqual(options.encodedLength, 40)
            XCTAssertEqual(length, FrameBuilder.tcpFrameLength(spec, payloadLength: payload.count))
            let frame = Array(buffer.prefix(length))
            XCTAssertEqual(Reference.u16(frame, 24), Reference.ipv4HeaderChecksum(frame))
            XCTAssertEqual(Reference.u16(frame, 50), Reference.tcpChecksum(frame), "iteration \(iteration)")
            XCTAssertEqual(frame[20], 0x40)  // DF
            XCTAssertEqual(frame[22], 64)  // TTL

            withSegment(frame) { segment in
                XCTAssertEqual(segment.ethernet.source, spec.sourceMAC)
                XCTAssertEqual(segment.ethernet.destination, spec.destinationMAC)
                XCTAssertEqual(segment.ipv4.source, spec.source)
                XCTAssertEqual(segment.ipv4.destination, spec.destination)
                XCTAssertEqual(segment.ipv4.identification, spec.identification)
                XCTAssertEqual(segment.ipv4.timeToLive, 64)
                XCTAssertTrue(segment.ipv4.dontFragment)
                XCTAssertTrue(segment.ipv4.isHeaderChecksumValid)
                XCTAssertEqual(segment.sourcePort, spec.sourcePort)
                XCTAssertEqual(segment.destinationPort, spec.destinationPort)
                XCTAssertEqual(segment.sequenceNumber, spec.sequenceNumber)
                XCTAssertEqual(segment.acknowledgmentNumber, spec.acknowledgmentNumber)
                XCTAssertEqual(segment.flags, spec.flags)
                XCTAssertEqual(segment.window, spec.window)
                XCTAssertEqual(segment.urgentPointer, spec.urgentPointer)
                XCTAssertEqual(segment.options, spec.options)
                XCTAssertEqual(Array(segment.payload), payload)
                XCTAssertTrue(segment.isChecksumValid)
            }
        }
    }

    func testErrors() throws {
        let spec = TCPFrameSpec(
            sourceMAC: .zero, destinationMAC: .broadcast, source: IPv4Address(10, 0, 0, 1),
            destination: IPv4Address(10, 0, 0, 2), sourcePort: 1, destinationPort: 2, sequenceNumber: SequenceNumber(1),
            acknowledgmentNumber: SequenceNumber(0), flags: .syn, window: 1)
        var small = [UInt8](repeating: 0xAA, count: 53)
        XCTAssertThrowsError(try small.withUnsafeMutableBytes { try FrameBuilder.tcp(spec, into: $0) }) { error in
            XCTAssertEqual(error as? WireError, .bufferTooSmall(needed: 54, available: 53))
        }
        XCTAssertEqual(small, [UInt8](repeating: 0xAA, count: 53), "nothing written on failure")

        var big = [UInt8](repeating: 0, count: 70000)
        let huge = [UInt8](repeating: 1, count: 65_516)
        XCTAssertThrowsError(
            try huge.withUnsafeBytes { payload in
                try big.withUnsafeMutableBytes { try FrameBuilder.tcp(spec, payload: payload, into: $0) }
            }
        ) { error in
            XCTAssertEqual(error as? WireError, .payloadTooLarge(length: 65_516, maximum: 65_495))
        }
        // The largest payload that fits gives Total Length 65535.
        let length = try huge.withUnsafeBytes { payload in
            try big.withUnsafeMutableBytes {
                try FrameBuilder.tcp(spec, payload: UnsafeRawBufferPointer(rebasing: payload[0..<65_495]), into: $0)
            }
        }
        XCTAssertEqual(length, 14 + 65535)
        withSegment(Array(big.prefix(length))) { segment in
            XCTAssertEqual(segment.ipv4.totalLength, 65535)
            XCTAssertEqual(segment.payloadLength, 65_495)
            XCTAssertTrue(segment.isChecksumValid)
        }

        var tooMany = SACKBlocks()
        for index in 0..<4 {
            try tooMany.append(SACKBlock(left: SequenceNumber(UInt32(index)), right: SequenceNumber(9)))
        }
        XCTAssertThrowsError(try tooMany.append(SACKBlock(left: SequenceNumber(0), right: SequenceNumber(1))))
        XCTAssertEqual(tooMany.count, 4)

        var options = TCPOptions(
            maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true,
            timestamps: TCPTimestamps(value: 1, echoReply: 2))
        options.sackBlocks = try SACKBlocks([SACKBlock(left: SequenceNumber(1), right: SequenceNumber(2))])
        XCTAssertEqual(options.encodedLength, 32)  // 4 + 12 + 4 + (4 + 8)
        try options.sackBlocks.append(SACKBlock(left: SequenceNumber(3), right: SequenceNumber(4)))
        XCTAssertEqual(options.encodedLength, 40)  // exactly full: still fine
        var buffer = [UInt8](repeating: 0, count: 200)
        var full = spec
        full.options = options
        let fullLength = try buffer.withUnsafeMutableBytes { try FrameBuilder.tcp(full, into: $0) }
        withSegment(Array(buffer.prefix(fullLength))) { segment in
            XCTAssertEqual(segment.headerLength, 60)
            XCTAssertEqual(segment.options, options)
        }
        try options.sackBlocks.append(SACKBlock(left: SequenceNumber(5), right: SequenceNumber(6)))
        XCTAssertEqual(options.encodedLength, 48)
        var withOptions = spec
        withOptions.options = options
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try FrameBuilder.tcp(withOptions, into: $0) }) {
            error in
            XCTAssertEqual(error as? WireError, .tcpOptionsTooLong(length: 48))
        }

        var arp = [UInt8](repeating: 0, count: 41)
        XCTAssertThrowsError(
            try arp.withUnsafeMutableBytes { try FrameBuilder.gratuitousARP(mac: .zero, ip: .any, into: $0) })
    }

    /// The payload may already sit where the builder puts it (replay copying logged bytes
    /// straight into the frame).
    func testPayloadInPlace() throws {
        let spec = TCPFrameSpec(
            sourceMAC: .zero, destinationMAC: .broadcast, source: IPv4Address(10, 0, 0, 1),
            destination: IPv4Address(10, 0, 0, 2), sourcePort: 1, destinationPort: 2, sequenceNumber: SequenceNumber(1),
            acknowledgmentNumber: SequenceNumber(0), flags: .ack, window: 1,
            options: TCPOptions(timestamps: TCPTimestamps(value: 5, echoReply: 6)))
        let offset = FrameBuilder.tcpFrameLength(spec, payloadLength: 0)
        XCTAssertEqual(offset, 66)
        var buffer = [UInt8](repeating: 0, count: 200)
        let text = Array("GET /bytes?n=100 HTTP/1.1\r\n\r\n".utf8)
        buffer.replaceSubrange(offset..<(offset + text.count), with: text)
        let length = try buffer.withUnsafeMutableBytes { frame in
            try FrameBuilder.tcp(
                spec, payload: UnsafeRawBufferPointer(rebasing: frame[offset..<(offset + text.count)]), into: frame)
        }
        withSegment(Array(buffer.prefix(length))) { segment in
            XCTAssertEqual(Array(segment.payload), text)
            XCTAssertTrue(segment.isChecksumValid)
        }
    }
}
