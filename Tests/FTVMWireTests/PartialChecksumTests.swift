import FTVMWire
import SeededRandom
import XCTest

/// Frames whose virtio-net header says NEEDS_CSUM: the TCP checksum field holds only the
/// pseudo-header's sum, and whoever sends the frame on (the kernel cutting a super-frame, or a
/// NIC) finishes it over the segment as it is then. A rewrite must leave that field alone, or
/// the finished checksum is wrong. Fuzzed against the naive reference.
final class PartialChecksumTests: XCTestCase {
    /// The field Linux writes for a partial checksum: the folded pseudo-header sum, not inverted.
    private func pseudoSeed(_ frame: [UInt8]) -> UInt16 {
        let ihl = Int(frame[14] & 0x0F) * 4
        let total = Int(frame[16]) << 8 | Int(frame[17])
        let length = total - ihl
        return UInt16(Reference.onesSum(Array(frame[26..<34]) + [0, 6, UInt8(length >> 8), UInt8(length & 0xFF)]))
    }

    /// What the sender's offload does: sums the segment from the TCP header on, seed included,
    /// and stores the complement.
    private func finished(_ frame: [UInt8]) -> UInt16 {
        let ihl = Int(frame[14] & 0x0F) * 4
        let total = Int(frame[16]) << 8 | Int(frame[17])
        return ~UInt16(Reference.onesSum(Array(frame[(14 + ihl)..<(14 + total)])))
    }

    func testRewritesOfPartialChecksumFramesFinishRight() {
        var rng = SplitMix64(seed: 0x5EED_0C5)
        var changed = 0
        for iteration in 0..<3000 {
            var bytes = RandomTCPFrame.make(using: &rng).bytes
            let checksumAt = 14 + Int(bytes[14] & 0x0F) * 4 + 16
            let seed = pseudoSeed(bytes)
            bytes[checksumAt] = UInt8(seed >> 8)
            bytes[checksumAt + 1] = UInt8(seed & 0xFF)
            // The same frame handled as if its checksum were complete: what the relay did before.
            var naive = bytes
            for step in 0..<4 {
                let kind = Int.random(in: 0..<6, using: &rng)
                let value = interesting32(using: &rng)
                func rewrite(_ segment: inout TCPSegmentView) {
                    switch kind {
                    case 0: segment.setSequenceNumber(SequenceNumber(value))
                    case 1: segment.setAcknowledgmentNumber(SequenceNumber(value))
                    case 2: segment.shiftSACKBlocks(by: value)
                    case 3: segment.setTimestamps(TCPTimestamps(value: value, echoReply: ~value))
                    case 4: segment.setWindow(UInt16(truncatingIfNeeded: value))
                    default: segment.clearFlags(TCPFlags(rawValue: UInt8(truncatingIfNeeded: value)))
                    }
                }
                bytes.withUnsafeMutableBytes { buffer in
                    guard case .ipv4TCP(var segment) = FrameClass.classify(buffer) else {
                        return XCTFail("iteration \(iteration): not parsed")
                    }
                    segment.checksumIsPartial = true
                    XCTAssertTrue(segment.isChecksumValid)
                    rewrite(&segment)
                    XCTAssertEqual(segment.checksum, seed, "iteration \(iteration) step \(step): seed moved")
                }
                naive.withUnsafeMutableBytes { buffer in
                    guard case .ipv4TCP(var segment) = FrameClass.classify(buffer) else { return }
                    rewrite(&segment)
                }
            }
            XCTAssertEqual(Reference.u16(bytes, checksumAt), seed)
            XCTAssertEqual(finished(bytes), Reference.tcpChecksum(bytes), "iteration \(iteration)")
            if finished(naive) != Reference.tcpChecksum(naive) { changed += 1 }
        }
        // Adjusting the seed as if it were a checksum goes wrong for nearly every frame a rewrite
        // changed, so the check above would have caught it.
        XCTAssertGreaterThan(changed, 2500)
    }

    func testHeaderLayoutIsLittleEndianAndRoundTrips() {
        let bytes: [UInt8] = [0x01, 0x81, 0x42, 0x00, 0xA8, 0x05, 0x22, 0x00, 0x10, 0x00]
        let header = bytes.withUnsafeBytes { VirtioNetHeader($0) }
        XCTAssertEqual(
            header,
            VirtioNetHeader(
                flags: 1, gsoType: 0x81, headerLength: 66, segmentSize: 1448, checksumStart: 34, checksumOffset: 16))
        XCTAssertEqual(header?.needsChecksum, true)
        XCTAssertEqual(header?.isSuperFrame, true)
        XCTAssertEqual(header?.segmentation, .tcpIPv4)
        var written = [UInt8](repeating: 0xEE, count: 12)
        written.withUnsafeMutableBytes { header?.write(to: $0) }
        XCTAssertEqual(Array(written[..<10]), bytes)
        XCTAssertEqual(Array(written[10...]), [0xEE, 0xEE])
        XCTAssertNil([UInt8](repeating: 0, count: 9).withUnsafeBytes { VirtioNetHeader($0) })
        let plain = [UInt8](repeating: 0, count: 10).withUnsafeBytes { VirtioNetHeader($0) }
        XCTAssertEqual(plain, .plain)
        XCTAssertEqual(plain?.needsChecksum, false)
        XCTAssertEqual(plain?.isSuperFrame, false)
    }
}
