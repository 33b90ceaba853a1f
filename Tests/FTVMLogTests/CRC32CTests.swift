import XCTest

@testable import FTVMLog

final class CRC32CTests: XCTestCase {
    /// RFC 3720 §B.4 test vectors and the usual check value.
    func testKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    /// Every length and alignment agrees with the bitwise definition (slicing-by-8 has a main loop
    /// and a tail; both must be right).
    func testMatchesBitwiseDefinition() {
        var generator = SeededGenerator(state: 7)
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<9 {
            for length in 0..<(data.count - start) where length < 40 || length % 17 == 0 {
                let slice = Array(data[start..<start + length])
                XCTAssertEqual(CRC32C.checksum(slice), referenceCRC32C(slice), "start \(start) length \(length)")
            }
        }
    }

    /// A running checksum fed in pieces equals the checksum of the whole (the server stream relies on it).
    func testContinuationEqualsWhole() {
        let whole = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for cut in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let first = CRC32C.checksum(Array(whole[..<cut]))
            XCTAssertEqual(CRC32C.checksum(Array(whole[cut...]), continuing: first), CRC32C.checksum(whole))
        }
    }

    /// Combining and splitting checksums without the bytes agrees with checksumming the bytes,
    /// for every cut of random data and lengths up to several chunk sizes (a trim takes the
    /// dropped prefix off the running server stream checksum this way).
    func testCombineAndSuffixAgreeWithTheBytes() {
        var generator = SeededGenerator(state: 11)
        for length in [0, 1, 2, 7, 8, 63, 64, 65, 1000, 4096, 70_001] {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            for cut in Set([0, length / 3, length / 2, length]).sorted() {
                let a = referenceCRC32C(Array(data[..<cut]))
                let b = referenceCRC32C(Array(data[cut...]))
                let whole = referenceCRC32C(data)
                let tail = UInt64(length - cut)
                XCTAssertEqual(CRC32C.combine(a, b, length: tail), whole, "length \(length) cut \(cut)")
                XCTAssertEqual(
                    CRC32C.suffix(of: whole, prefix: a, suffixLength: tail), b, "length \(length) cut \(cut)")
            }
        }
        // A shift by a length beyond 2^32 bytes composes like the smaller ones.
        let crc: UInt32 = 0xDEAD_BEEF
        XCTAssertEqual(
            CRC32C.shift(CRC32C.shift(crc, by: 1 << 33), by: 12345), CRC32C.shift(crc, by: (1 << 33) + 12345))
    }
}
