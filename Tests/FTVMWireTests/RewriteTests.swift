import FTVMWire
import SeededRandom
import XCTest

/// In-place rewriting: after every change the incrementally updated TCP checksum must equal a
/// from-scratch recomputation by the naive reference, bit for bit.
final class RewriteTests: XCTestCase {
    /// RFC 1624 §4's own example, where eqn. 2 gives 0xFFFF and the right answer is 0x0000.
    func testRFC1624Example() {
        XCTAssertEqual(InternetChecksum.adjusted(0xDD2F, replacing: UInt16(0x5555), with: UInt16(0x3285)), 0x0000)
    }

    func testRandomFramesRandomRewrites() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        var rewrites = 0
        var oddTimestamps = 0
        var oddSACK = 0
        var zeroChecksums = 0
        for iteration in 0..<3000 {
            let random = RandomTCPFrame.make(using: &rng)
            if let at = random.timestampsOffset, (at - 34) & 1 != 0 { oddTimestamps += 1 }
            if let at = random.sackOffset, (at - 34) & 1 != 0 { oddSACK += 1 }
            var bytes = random.bytes
            bytes.withUnsafeMutableBytes { buffer in
                guard case .ipv4TCP(var segment) = FrameClass.classify(buffer) else {
                    return XCTFail("iteration \(iteration): not parsed: \(FrameClass.classify(buffer))")
                }
                XCTAssertTrue(segment.isChecksumValid)
                XCTAssertEqual(segment.payloadLength, random.payloadLength)
                XCTAssertEqual(segment.ipv4.trailingLength, random.paddingLength)
                XCTAssertEqual(segment.optionOffsets.timestamps, random.timestampsOffset)
                XCTAssertEqual(segment.optionOffsets.sackBlocks, random.sackOffset)
                XCTAssertEqual(segment.options.sackBlocks.count, random.sackBlocks.count)
                for step in 0..<8 {
                    let value = interesting32(using: &rng)
                    switch Int.random(in: 0..<8, using: &rng) {
                    case 0: segment.setSequenceNumber(SequenceNumber(value))
                    case 1: segment.setAcknowledgmentNumber(SequenceNumber(value))
                    case 2: segment.shiftSACKBlocks(by: value)
                    case 3:
                        let set = segment.setTimestamps(
                            TCPTimestamps(value: value, echoReply: interesting32(using: &rng)))
                        XCTAssertEqual(set, random.timestamps != nil)
                    case 4: segment.setWindow(UInt16(truncatingIfNeeded: value))
                    case 5: segment.clearFlags(TCPFlags(rawValue: UInt8(truncatingIfNeeded: value)))
                    case 6:
                        segment.setPorts(
                            source: UInt16(truncatingIfNeeded: value),
                            destination: UInt16(truncatingIfNeeded: value >> 16))
                    default: segment.setSequenceNumber(segment.sequenceNumber)  // no change at all
                    }
                    rewrites += 1
                    let now = Array(buffer)
                    let expected = Reference.tcpChecksum(now)
                    if expected == 0 { zeroChecksums += 1 }
                    XCTAssertEqual(
                        segment.checksum, expected, "iteration \(iteration) step \(step)")
                    XCTAssertEqual(Reference.u16(now, segment.checksumOffset), expected)
                    XCTAssertTrue(segment.isChecksumValid)
                    // The view reports what the frame now holds.
                    XCTAssertEqual(segment.sequenceNumber.rawValue, Reference.u32(now, segment.sequenceNumberOffset))
                    XCTAssertEqual(
                        segment.acknowledgmentNumber.rawValue, Reference.u32(now, segment.acknowledgmentNumberOffset))
                    XCTAssertEqual(segment.window, Reference.u16(now, segment.windowOffset))
                    XCTAssertEqual(segment.sourcePort, Reference.u16(now, segment.offset))
                    XCTAssertEqual(segment.destinationPort, Reference.u16(now, segment.offset + 2))
                    XCTAssertEqual(segment.flags.rawValue, now[segment.offset + 13])
                    if let at = segment.optionOffsets.timestamps {
                        XCTAssertEqual(segment.options.timestamps?.value, Reference.u32(now, at))
                        XCTAssertEqual(segment.options.timestamps?.echoReply, Reference.u32(now, at + 4))
                    }
                    if let at = segment.optionOffsets.sackBlocks {
                        for (index, block) in segment.options.sackBlocks.enumerated() {
                            XCTAssertEqual(block.left.rawValue, Reference.u32(now, at + 8 * index))
                            XCTAssertEqual(block.right.rawValue, Reference.u32(now, at + 8 * index + 4))
                        }
                    }
                }
                // The IPv4 header is not touched by TCP rewrites.
                XCTAssertTrue(segment.ipv4.isHeaderChecksumValid)
            }
        }
        XCTAssertEqual(rewrites, 24000)
        // The generator really produced the awkward layouts.
        XCTAssertGreaterThan(oddTimestamps, 100)
        XCTAssertGreaterThan(oddSACK, 100)
        print("rewrites: \(rewrites), odd TS: \(oddTimestamps), odd SACK: \(oddSACK), zero checksums: \(zeroChecksums)")
    }

    func testSACKShiftWrapsAround() {
        withSegment(Golden.ackWithTwoSACKBlocks) { segment in
            // Shift so the first block straddles 2^32: left near the top, right past zero.
            let delta = 0 &- UInt32(2_000_002_000)
            segment.shiftSACKBlocks(by: delta)
            let first = segment.options.sackBlocks[0]
            XCTAssertEqual(first.left.rawValue, 0xFFFF_FDEC)  // 2_000_001_468 − 2_000_002_000 = −532 mod 2^32
            XCTAssertEqual(first.right.rawValue, 916)
            XCTAssertTrue(first.left.precedes(first.right))
            XCTAssertEqual(segment.checksum, Reference.tcpChecksum(Array(segment.frame)))
            // And back: the frame returns to the golden bytes exactly.
            segment.shiftSACKBlocks(by: 0 &- delta)
            XCTAssertEqual(Array(segment.frame), Golden.ackWithTwoSACKBlocks)
        }
    }

    func testSequenceWrapsAtTwoToThe32() {
        var bytes = Golden.dataWithPadding
        for value: UInt32 in [0xFFFF_FFFF, 0, 1, 0x7FFF_FFFF, 0x8000_0000] {
            bytes = withSegment(bytes) { segment in
                segment.setSequenceNumber(SequenceNumber(value))
                segment.setAcknowledgmentNumber(segment.acknowledgmentNumber &+ 0xFFFF_FFFF)  // −1
            }
            XCTAssertEqual(Reference.u32(bytes, 38), value)
            XCTAssertEqual(Reference.u16(bytes, 50), Reference.tcpChecksum(bytes))
        }
        XCTAssertEqual(Reference.u32(bytes, 42), 2_000_000_001 &- 5)
    }

    /// A rewrite that makes the correct checksum 0x0000 (the sum is 0xFFFF), a rewrite away from
    /// 0x0000, and the non-canonical 0xFFFF that also verifies.
    func testChecksumEdgeValues() {
        for golden in [Golden.syn, Golden.dataWithPadding, Golden.serverData, Golden.oddTimestamps] {
            let original = Reference.u32(golden, 38)
            let checksum = Reference.u16(golden, 50)
            // Adding the checksum to the low half of the sequence number brings the sum to 0xFFFF.
            var low = UInt32(original & 0xFFFF) + UInt32(checksum)
            low = (low & 0xFFFF) + (low >> 16)
            let zeroing = (original & 0xFFFF_0000) | low
            var check = golden
            check.put32(zeroing, at: 38)
            XCTAssertEqual(Reference.tcpChecksum(check), 0x0000, "test setup")

            let zeroed = withSegment(golden) { segment in
                segment.setSequenceNumber(SequenceNumber(zeroing))
                XCTAssertEqual(segment.checksum, 0x0000)
                XCTAssertTrue(segment.isChecksumValid)
            }
            // From 0x0000 to something else, and back.
            let away = withSegment(zeroed) { segment in
                segment.setSequenceNumber(SequenceNumber(original))
                XCTAssertEqual(segment.checksum, checksum)
            }
            XCTAssertEqual(away, golden)

            // 0xFFFF is −0: the same value as 0x0000, so it verifies, and a rewrite from it
            // still verifies (it may come out canonical, which is fine).
            var negativeZero = zeroed
            negativeZero.put16(0xFFFF, at: 50)
            XCTAssertTrue(Reference.tcpChecksumVerifies(negativeZero))
            withSegment(negativeZero) { segment in
                XCTAssertTrue(segment.isChecksumValid)
                segment.setSequenceNumber(SequenceNumber(original))
                XCTAssertTrue(segment.isChecksumValid)
                XCTAssertTrue(Reference.tcpChecksumVerifies(Array(segment.frame)))
            }
        }
    }

    /// A corrupted segment stays corrupted by the same amount: the relay must not launder it.
    func testWrongChecksumStaysWrong() {
        var bytes = Golden.serverData
        bytes[70] ^= 0x01  // flip a payload bit
        withSegment(bytes) { segment in
            XCTAssertFalse(segment.isChecksumValid)
            segment.setSequenceNumber(segment.sequenceNumber &- 12345)
            segment.setTimestamps(TCPTimestamps(value: 1, echoReply: 2))
            XCTAssertFalse(segment.isChecksumValid)
            XCTAssertFalse(Reference.tcpChecksumVerifies(Array(segment.frame)))
        }
    }

    func testRewritesWithoutTheOptionDoNothing() {
        let after = withSegment(Golden.dataWithPadding) { segment in
            XCTAssertFalse(segment.setTimestamps(TCPTimestamps(value: 1, echoReply: 1)))
            segment.shiftSACKBlocks(by: 99)
            XCTAssertNil(segment.options.timestamps)
        }
        XCTAssertEqual(after, Golden.dataWithPadding)
    }

    func testRecomputeChecksumRepairsAHandEditedFrame() {
        var bytes = Golden.syn
        bytes[49] = 0x00  // window edited by hand, checksum now stale
        withSegment(bytes) { segment in
            XCTAssertFalse(segment.isChecksumValid)
            segment.recomputeChecksum()
            XCTAssertTrue(segment.isChecksumValid)
            XCTAssertEqual(segment.checksum, Reference.tcpChecksum(Array(segment.frame)))
        }
    }

    func testEthernetAddressRewrite() {
        withClassified(Golden.syn) { frameClass in
            guard case .ipv4TCP(let segment) = frameClass else { return XCTFail() }
            segment.ethernet.setDestination(MACAddress(1, 2, 3, 4, 5, 6))
            segment.ethernet.setSource(.broadcast)
            let now = Array(segment.frame)
            XCTAssertEqual(Array(now[0..<12]), [1, 2, 3, 4, 5, 6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            XCTAssertTrue(segment.isChecksumValid)
        }
    }
}
