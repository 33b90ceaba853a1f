import FTVMDemoKit
import XCTest

/// Expected values were computed with an independent Python implementation of splitmix64
/// (arbitrary-precision integers masked to 64 bits), not with this module.
final class SplitMix64Tests: XCTestCase {
    func testKnownOutputsForSeedZero() {
        var generator = SplitMix64(seed: 0)
        XCTAssertEqual(generator.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(generator.next(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(generator.next(), 0x06C4_5D18_8009_454F)
        XCTAssertEqual(generator.next(), 0xF88B_B8A8_724C_81EC)
    }

    func testRandomAccessMatchesSequentialOutput() {
        var generator = SplitMix64(seed: 12345)
        for index in 0..<100 {
            XCTAssertEqual(SplitMix64.output(seed: 12345, index: UInt64(index)), generator.next())
        }
    }

    func testBytesAreLittleEndianWords() {
        // 0xE220A8397B1DCDAF, then 0x6E789E6AA1B965F4, each least significant byte first.
        XCTAssertEqual(readAll(SplitMix64Stream(seed: 0, length: 16)), bytes("afcd1d7b39a820e2f465b9a16a9e786e"))
    }

    func testTruncatesToLengthNotMultipleOfEight() {
        XCTAssertEqual(readAll(SplitMix64Stream(seed: 42, length: 13)), bytes("956eeb2f2632d7bd03f166b233"))
        XCTAssertEqual(readAll(SplitMix64Stream(seed: 0, length: 3)), bytes("afcd1d"))
        XCTAssertEqual(readAll(SplitMix64Stream(seed: 0, length: 0)), [])
    }

    func testSeedWrapsAround() {
        XCTAssertEqual(readAll(SplitMix64Stream(seed: .max, length: 11)), bytes("202c651b7771d9e4c982f6"))
    }

    func testChunkSizeDoesNotChangeTheStream() {
        let length: UInt64 = 10_007
        let reference = readAll(SplitMix64Stream(seed: 99, length: length), chunk: 4096)
        XCTAssertEqual(reference.count, Int(length))
        for chunk in [1, 3, 7, 8, 9, 64, 1000, 65536] {
            XCTAssertEqual(
                readAll(SplitMix64Stream(seed: 99, length: length), chunk: chunk), reference, "chunk \(chunk)")
        }
    }

    func testPeekDoesNotAdvanceAndPartialAdvanceResumesMidWord() {
        var stream = SplitMix64Stream(seed: 5, length: 40)
        let whole = readAll(stream)
        var buffer = [UInt8](repeating: 0, count: 16)
        var collected: [UInt8] = []
        for committed in [3, 0, 5, 11, 16, 5] {
            let peeked = buffer.withUnsafeMutableBytes { stream.peek(into: $0) }
            let again = buffer.withUnsafeMutableBytes { stream.peek(into: $0) }
            XCTAssertEqual(peeked, again)
            let take = min(committed, peeked)
            collected += buffer[0..<take]
            stream.advance(by: take)
        }
        XCTAssertEqual(stream.remaining, 0)
        XCTAssertEqual(collected, whole)
    }

    func testStreamStartingAtOffsetMatchesSuffix() {
        let whole = readAll(SplitMix64Stream(seed: 8, length: 100))
        for offset in [1, 7, 8, 13, 99, 100] {
            XCTAssertEqual(
                readAll(SplitMix64Stream(seed: 8, length: 100, offset: UInt64(offset))), Array(whole[offset...]))
        }
    }

    func testHugeLengthIsNotMaterialised() {
        var stream = SplitMix64Stream(seed: 1, length: .max)
        var buffer = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(buffer.withUnsafeMutableBytes { stream.read(into: $0) }, 8)
        XCTAssertEqual(stream.remaining, .max - 8)
    }
}

func readAll(_ stream: SplitMix64Stream, chunk: Int = 4096) -> [UInt8] {
    var stream = stream
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: chunk)
    while stream.remaining > 0 {
        let count = buffer.withUnsafeMutableBytes { stream.read(into: $0) }
        out += buffer[0..<count]
    }
    return out
}

/// Hex string to bytes, for golden vectors.
func bytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count, by: 2).map {
        UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)!
    }
}
