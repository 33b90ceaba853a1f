import FTVMWire
import SeededRandom
import XCTest

final class ChecksumTests: XCTestCase {
    /// RFC 1071 §3's worked example: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
    func testRFC1071Example() {
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        bytes.withUnsafeBytes { buffer in
            XCTAssertEqual(InternetChecksum.sum(buffer), 0xDDF2)
            XCTAssertEqual(InternetChecksum.checksum(buffer), 0x220D)
        }
    }

    /// The 64-bit fast path against the naive word-at-a-time reference, for every length from 0
    /// to 300 at every alignment from 0 to 7, with carries forced by 0xFF-heavy data.
    func testFastSumMatchesReference() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let storage = (0..<320).map { _ in Bool.random(using: &rng) ? 0xFF : UInt8.random(in: 0...255, using: &rng) }
        storage.withUnsafeBytes { whole in
            for start in 0..<8 {
                for length in 0...300 {
                    let slice = Array(storage[start..<(start + length)])
                    let buffer = UnsafeRawBufferPointer(rebasing: whole[start..<(start + length)])
                    XCTAssertEqual(
                        InternetChecksum.checksum(buffer), Reference.checksum(slice), "start \(start) length \(length)")
                }
            }
        }
        let ones = [UInt8](repeating: 0xFF, count: 4096)
        ones.withUnsafeBytes { XCTAssertEqual(InternetChecksum.sum($0), 0xFFFF) }
        let zeros = [UInt8](repeating: 0, count: 77)
        zeros.withUnsafeBytes { XCTAssertEqual(InternetChecksum.checksum($0), 0xFFFF) }
    }

    func testIncrementalSixteenAndThirtyTwoBitUpdates() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<20000 {
            var words = (0..<10).map { _ in UInt16(truncatingIfNeeded: interesting32(using: &rng)) }
            var bytes: [UInt8] { words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
            let before = Reference.checksum(bytes)
            let index = Int.random(in: 0..<9, using: &rng)
            let old32 = UInt32(words[index]) << 16 | UInt32(words[index + 1])
            let new32 = interesting32(using: &rng)
            words[index] = UInt16(new32 >> 16)
            words[index + 1] = UInt16(new32 & 0xFFFF)
            XCTAssertEqual(InternetChecksum.adjusted(before, replacing: old32, with: new32), Reference.checksum(bytes))
            let old16 = words[0]
            let new16 = UInt16(truncatingIfNeeded: interesting32(using: &rng))
            let mid = Reference.checksum(bytes)
            words[0] = new16
            XCTAssertEqual(InternetChecksum.adjusted(mid, replacing: old16, with: new16), Reference.checksum(bytes))
        }
    }

    func testIPv4HeaderAndTCPHelpersAgreeWithGolden() {
        Golden.syn.withUnsafeBytes { frame in
            XCTAssertEqual(InternetChecksum.ipv4Header(UnsafeRawBufferPointer(rebasing: frame[14..<34])), 0x09DA)
            XCTAssertEqual(InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: frame[14..<34])), 0)
            XCTAssertEqual(
                InternetChecksum.tcp(
                    source: IPv4Address(10, 77, 0, 1), destination: IPv4Address(10, 77, 0, 2),
                    segment: UnsafeRawBufferPointer(rebasing: frame[34..<74])),
                0x8F52)
            // Degenerate inputs do not trap.
            XCTAssertEqual(
                InternetChecksum.ipv4Header(UnsafeRawBufferPointer(rebasing: frame[0..<3])),
                Reference.checksum(Array(Golden.syn[0..<3])))
            _ = InternetChecksum.tcp(
                source: .any, destination: .any, segment: UnsafeRawBufferPointer(rebasing: frame[0..<5]))
        }
    }
}

final class SequenceNumberTests: XCTestCase {
    func testOrderingAcrossWrap() {
        let top = SequenceNumber(0xFFFF_FFF0)
        let bottom = SequenceNumber(0x10)
        XCTAssertTrue(top.precedes(bottom))
        XCTAssertTrue(bottom.follows(top))
        XCTAssertFalse(bottom.precedes(top))
        XCTAssertFalse(top.follows(bottom))
        XCTAssertEqual(top.distance(to: bottom), 0x20)
        XCTAssertEqual(bottom.distance(to: top), -0x20)
        XCTAssertTrue(top.precedesOrEquals(top))
        XCTAssertTrue(top.followsOrEquals(top))
        XCTAssertFalse(top.precedes(top))
        XCTAssertFalse(top.follows(top))
    }

    func testHalfwayIsUnordered() {
        let a = SequenceNumber(5)
        let b = a &+ 0x8000_0000
        XCTAssertFalse(a.precedes(b))
        XCTAssertFalse(b.precedes(a))
        XCTAssertFalse(a.follows(b))
        XCTAssertTrue(a.precedes(a &+ 0x7FFF_FFFF))
        XCTAssertTrue(a.follows(a &- 0x7FFF_FFFF))
    }

    func testArithmetic() {
        let primaryISN = SequenceNumber(4_000_000_000)
        let backupISN = SequenceNumber(100)
        let delta: UInt32 = backupISN &- primaryISN
        XCTAssertEqual(primaryISN &+ delta, backupISN)
        XCTAssertEqual(backupISN &- delta, primaryISN)
        XCTAssertEqual(SequenceNumber(0) &- 1, SequenceNumber(0xFFFF_FFFF))
        XCTAssertEqual(SequenceNumber(0xFFFF_FFFF) &+ 1, SequenceNumber(0))
        XCTAssertEqual(SequenceNumber(7).description, "7")
    }

    func testWindowContainment() {
        let start = SequenceNumber(0xFFFF_FF00)
        XCTAssertTrue(start.isWithin(start: start, count: 1))
        XCTAssertTrue(SequenceNumber(0x50).isWithin(start: start, count: 0x200))
        XCTAssertFalse(SequenceNumber(0x100).isWithin(start: start, count: 0x200))
        XCTAssertFalse(start.isWithin(start: start, count: 0))
        XCTAssertFalse((start &- 1).isWithin(start: start, count: 0x200))
    }

    /// Against a brute-force definition on random pairs.
    func testAgainstDefinition() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<100_000 {
            let a = interesting32(using: &rng)
            let b =
                Bool.random(using: &rng) ? interesting32(using: &rng) : a &+ UInt32.random(in: 0...3, using: &rng) &- 1
            let forward = UInt64(b &- a)  // how far b is ahead of a
            let expected = forward != 0 && forward < 0x8000_0000
            XCTAssertEqual(SequenceNumber(a).precedes(SequenceNumber(b)), expected, "\(a) \(b)")
        }
    }
}

final class AddressTests: XCTestCase {
    func testMAC() {
        let mac = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0xAB)
        XCTAssertEqual(mac.description, "52:54:00:12:34:ab")
        XCTAssertEqual(MACAddress("52:54:00:12:34:AB"), mac)
        XCTAssertEqual(MACAddress("52-54-00-12-34-ab"), mac)
        XCTAssertNil(MACAddress("52:54:00:12:34"))
        XCTAssertNil(MACAddress("52:54:00:12:34:ab:cd"))
        XCTAssertNil(MACAddress("52:54:00:12:34:g0"))
        XCTAssertNil(MACAddress("5:54:00:12:34:ab"))
        XCTAssertEqual(mac.octet(0), 0x52)
        XCTAssertEqual(mac.octet(5), 0xAB)
        XCTAssertFalse(mac.isMulticast)
        XCTAssertTrue(MACAddress.broadcast.isMulticast)
        XCTAssertTrue(MACAddress.broadcast.isBroadcast)
        XCTAssertTrue(MACAddress(0x01, 0x00, 0x5E, 0, 0, 1).isMulticast)
        XCTAssertEqual(MACAddress(rawValue: UInt64.max), .broadcast)
    }

    func testIPv4() {
        let address = IPv4Address(10, 77, 0, 2)
        XCTAssertEqual(address.rawValue, 0x0A4D_0002)
        XCTAssertEqual(address.description, "10.77.0.2")
        XCTAssertEqual(IPv4Address("10.77.0.2"), address)
        XCTAssertEqual(IPv4Address("255.255.255.255")?.rawValue, 0xFFFF_FFFF)
        for bad in ["10.77.0", "10.77.0.2.1", "10.77.0.256", "10.77..2", "a.b.c.d", "", "10.77.0.+2", "1000.1.1.1"] {
            XCTAssertNil(IPv4Address(bad), bad)
        }
    }

    func testFlagsDescription() {
        XCTAssertEqual(TCPFlags([.syn, .ack]).description, "SYN|ACK")
        XCTAssertEqual(TCPFlags().description, "none")
    }
}
