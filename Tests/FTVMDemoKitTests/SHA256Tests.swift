import FTVMDemoKit
import XCTest

/// Vectors from FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf") and, for
/// padding boundaries, Python's hashlib.
final class SHA256Tests: XCTestCase {
    func hex(_ text: String) -> String { SHA256.hex(SHA256.hash(Array(text.utf8))) }

    func testEmpty() {
        XCTAssertEqual(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testABC() {
        XCTAssertEqual(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func test448BitMessage() {
        XCTAssertEqual(
            hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testOneMillionA() {
        var hasher = SHA256()
        let thousand = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { hasher.update(thousand) }
        XCTAssertEqual(
            SHA256.hex(hasher.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Lengths around the 55/56/64-byte points where padding needs a second block.
    func testPaddingBoundaries() {
        let expected = [
            55: "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072",
            56: "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e",
            63: "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2",
            64: "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c",
            65: "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9",
            119: "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c",
            120: "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98",
        ]
        for (length, digest) in expected {
            XCTAssertEqual(hex(String(repeating: "x", count: length)), digest, "length \(length)")
        }
    }

    func testIncrementalMatchesOneShotForEverySplit() {
        let message = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let oneShot = SHA256.hash(message)
        for split in 0...message.count {
            var hasher = SHA256()
            hasher.update(message[..<split])
            hasher.update(message[split...])
            XCTAssertEqual(hasher.finalize(), oneShot, "split at \(split)")
        }
        for piece in [1, 3, 63, 64, 65] {
            var hasher = SHA256()
            for start in stride(from: 0, to: message.count, by: piece) {
                hasher.update(message[start..<min(start + piece, message.count)])
            }
            XCTAssertEqual(hasher.finalize(), oneShot, "pieces of \(piece)")
        }
    }

    func testFinalizeDoesNotDisturbTheRunningHash() {
        var hasher = SHA256()
        hasher.update(Array("ab".utf8))
        XCTAssertEqual(SHA256.hex(hasher.finalize()), hex("ab"))
        hasher.update(Array("c".utf8))
        XCTAssertEqual(SHA256.hex(hasher.finalize()), hex("abc"))
    }

    func testSplitMixStreamDigestMatchesPython() {
        // hashlib.sha256(splitmix64 bytes, seed 7, length 100003)
        var stream = SplitMix64Stream(seed: 7, length: 100_003)
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 4099)
        while stream.remaining > 0 {
            let count = buffer.withUnsafeMutableBytes { stream.read(into: $0) }
            hasher.update(buffer[0..<count])
        }
        XCTAssertEqual(
            SHA256.hex(hasher.finalize()), "45b46a3aabe3e31002da47ea764e810d0acf9fda4e7e7b005a380cb1054b0719")
    }
}
