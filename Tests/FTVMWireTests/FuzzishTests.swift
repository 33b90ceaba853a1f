import FTVMWire
import SeededRandom
import XCTest

/// Hundreds of thousands of mutated and random frames through `classify` and every accessor.
/// Passing means: no trap, every offset the views report stays inside the frame, rewrites touch
/// only the fields they name and keep a valid checksum valid.
final class FuzzishTests: XCTestCase {
    static let seeds: [[UInt8]] = [
        Golden.syn, Golden.dataWithPadding, Golden.serverData, Golden.ackWithTwoSACKBlocks, Golden.oddTimestamps,
        Golden.ipOptionsFin, Golden.arpRequest, Golden.gratuitousARP, Golden.arpReply,
    ]
    static let interestingBytes: [UInt8] = [
        0, 1, 2, 3, 4, 5, 6, 8, 10, 0x0F, 0x40, 0x45, 0x4F, 0x50, 0x7F, 0x80, 0xF0, 0xFF,
    ]

    func testMutatedAndRandomFramesNeverTrap() {
        var rng = SplitMix64(seed: 0xF022_0001)
        var kinds = [Int](repeating: 0, count: FrameClass.Kind.allCases.count)
        var errors = Set<String>()
        let iterations = 300_000
        for iteration in 0..<iterations {
            var frame: [UInt8]
            switch iteration % 4 {
            case 0:
                frame = Self.seeds[Int.random(in: 0..<Self.seeds.count, using: &rng)]
            case 1:
                frame = RandomTCPFrame.make(using: &rng).bytes
            case 2:
                // Random bytes behind a plausible Ethernet + IPv4 start, so parsing gets deep.
                frame = (0..<Int.random(in: 0...120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if frame.count > 14 {
                    frame[12] = 0x08
                    frame[13] = Bool.random(using: &rng) ? 0x00 : 0x06
                }
                if frame.count > 15, Bool.random(using: &rng) { frame[14] = 0x45 }
            default:
                frame = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            if iteration % 4 == 0 || (iteration % 4 == 1 && Bool.random(using: &rng)) { mutate(&frame, using: &rng) }
            let kind = exercise(frame, using: &rng, errors: &errors)
            kinds[kind.rawValue] += 1
        }
        print("fuzzish kinds:", zip(FrameClass.Kind.allCases, kinds).map { "\($0)=\($1)" }.joined(separator: " "))
        print("fuzzish distinct errors:", errors.count)
        for kind in FrameClass.Kind.allCases {
            XCTAssertGreaterThan(kinds[kind.rawValue], 100, "\(kind) barely reached")
        }
        XCTAssertGreaterThan(kinds[FrameClass.Kind.ipv4TCP.rawValue], 50_000)
        XCTAssertGreaterThanOrEqual(errors.count, 9, "\(errors)")
    }

    private func mutate(_ frame: inout [UInt8], using rng: inout SplitMix64) {
        for _ in 0..<Int.random(in: 1...6, using: &rng) {
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where !frame.isEmpty:
                frame[Int.random(in: 0..<frame.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !frame.isEmpty:
                frame[Int.random(in: 0..<frame.count, using: &rng)] = Self.interestingBytes.randomElement(using: &rng)!
            case 2:
                frame = Array(frame.prefix(Int.random(in: 0...frame.count, using: &rng)))
            case 3:
                frame += (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 4 where frame.count > 18:
                // A length field: IPv4 total length, IHL byte, or data offset byte.
                let target = [14, 16, 17, 46, 50].randomElement(using: &rng)!
                if target < frame.count { frame[target] = Self.interestingBytes.randomElement(using: &rng)! }
            default:
                if frame.count > 55 {
                    // An option byte of a 20-byte-IP-header TCP frame.
                    let at = Int.random(in: 54..<min(frame.count, 94), using: &rng)
                    frame[at] = Self.interestingBytes.randomElement(using: &rng)!
                }
            }
        }
    }

    /// Classifies `bytes` and reads everything there is to read; rewrites TCP segments.
    private func exercise(_ bytes: [UInt8], using rng: inout SplitMix64, errors: inout Set<String>) -> FrameClass.Kind {
        var copy = bytes
        return copy.withUnsafeMutableBytes { buffer in
            let frameClass = FrameClass.classify(buffer)
            switch frameClass {
            case .arp(let arp):
                XCTAssertLessThanOrEqual(arp.offset + ARPView.length, buffer.count)
                _ = (arp.operation, arp.senderMAC, arp.senderIP, arp.targetMAC, arp.targetIP, arp.isGratuitous)
            case .ipv4Fragment(let ip), .ipv4Other(let ip):
                check(ip, in: buffer)
            case .ipv4TCP(var segment):
                check(segment.ipv4, in: buffer)
                XCTAssertGreaterThanOrEqual(segment.headerLength, 20)
                XCTAssertLessThanOrEqual(segment.payloadOffset + segment.payloadLength, buffer.count)
                XCTAssertGreaterThanOrEqual(segment.payloadLength, 0)
                XCTAssertEqual(segment.payload.count, segment.payloadLength)
                for offset in [segment.optionOffsets.maximumSegmentSize, segment.optionOffsets.windowScale] {
                    if let offset { XCTAssertLessThan(offset, segment.payloadOffset) }
                }
                if let at = segment.optionOffsets.timestamps { XCTAssertLessThanOrEqual(at + 8, segment.payloadOffset) }
                if let at = segment.optionOffsets.sackBlocks {
                    XCTAssertLessThanOrEqual(at + 8 * segment.options.sackBlocks.count, segment.payloadOffset)
                }
                _ = (segment.fourTuple, segment.segmentLength, segment.flags, segment.urgentPointer, segment.options)
                let valid = segment.isChecksumValid
                // 0xFFFF is −0 and verifies exactly when the canonical checksum is 0x0000.
                let computed = segment.computeChecksum()
                XCTAssertEqual(valid, computed == segment.checksum || (computed == 0 && segment.checksum == 0xFFFF))
                let before = Array(buffer)
                segment.setSequenceNumber(SequenceNumber(interesting32(using: &rng)))
                segment.setAcknowledgmentNumber(SequenceNumber(interesting32(using: &rng)))
                segment.shiftSACKBlocks(by: interesting32(using: &rng))
                segment.setTimestamps(TCPTimestamps(value: interesting32(using: &rng), echoReply: 0))
                segment.setWindow(UInt16(truncatingIfNeeded: rng.next()))
                XCTAssertEqual(segment.isChecksumValid, valid)
                // Only the TCP header may have changed.
                let after = Array(buffer)
                XCTAssertEqual(before[..<segment.offset], after[..<segment.offset])
                XCTAssertEqual(before[segment.payloadOffset...], after[segment.payloadOffset...])
            case .illegal(let error):
                errors.insert(String(describing: error).prefix { $0 != "(" }.description)
            case .nonIPv4, .unsupported, .truncated:
                break
            }
            return frameClass.kind
        }
    }

    private func check(_ ip: IPv4View, in buffer: UnsafeMutableRawBufferPointer) {
        XCTAssertGreaterThanOrEqual(ip.headerLength, 20)
        XCTAssertLessThanOrEqual(ip.offset + ip.totalLength, buffer.count)
        XCTAssertGreaterThanOrEqual(ip.payloadLength, 0)
        XCTAssertGreaterThanOrEqual(ip.trailingLength, 0)
        XCTAssertEqual(ip.payload.count, ip.payloadLength)
        _ = (ip.isHeaderChecksumValid, ip.computeHeaderChecksum(), ip.fragmentOffset, ip.dontFragment, ip.moreFragments)
    }
}
