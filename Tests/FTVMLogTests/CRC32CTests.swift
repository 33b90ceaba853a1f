import SeededRandom
import XCTest

@testable import FTVMLog

final class CRC32CTests: XCTestCase {
    /// The implementations this machine can run: both on an x86-64 with SSE4.2, software alone
    /// elsewhere (the hardware checks below then say so and skip).
    private let implementations = CRC32C.Implementation.allCases.filter(\.isAvailable)

    /// RFC 3720 §B.4 test vectors and the usual check value, from each implementation.
    func testKnownVectors() {
        let vectors: [(String, [UInt8], UInt32)] = [
            ("123456789", Array("123456789".utf8), 0xE306_9283),
            ("32 zeros", [UInt8](repeating: 0, count: 32), 0x8A91_36AA),
            ("32 x 0xFF", [UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ("0...31", (0..<32).map { UInt8($0) }, 0x46DD_794E),
            ("31...0", (0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
            ("empty", [], 0),
        ]
        for implementation in implementations {
            for (name, bytes, expected) in vectors {
                XCTAssertEqual(CRC32C.checksum(bytes, using: implementation), expected, "\(implementation) \(name)")
            }
        }
        for (name, bytes, expected) in vectors {
            XCTAssertEqual(CRC32C.checksum(bytes), expected, "active (\(CRC32C.Implementation.active)) \(name)")
        }
    }

    /// The instruction is used wherever the CPU has it (this machine's /proc/cpuinfo says whether).
    func testActiveIsTheHardwareWhereTheCPUHasIt() throws {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        #if arch(x86_64)
        let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }.map { $0.split(separator: " ") }
        let hasSSE42 = flags?.contains("sse4_2") ?? false
        #else
        let hasSSE42 = false
        #endif
        XCTAssertEqual(CRC32C.Implementation.hardware.isAvailable, hasSSE42)
        XCTAssertEqual(CRC32C.Implementation.active, hasSSE42 ? .hardware : .software)
    }

    /// Every length and alignment agrees with the bitwise definition, for each implementation
    /// (both have an 8-byte main loop and a byte tail; both must be right).
    func testMatchesBitwiseDefinition() {
        var generator = SplitMix64(seed: 7)
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for implementation in implementations {
            for start in 0..<9 {
                for length in 0..<(data.count - start) where length < 40 || length % 17 == 0 {
                    let slice = Array(data[start..<start + length])
                    XCTAssertEqual(
                        CRC32C.checksum(slice, using: implementation), referenceCRC32C(slice),
                        "\(implementation) start \(start) length \(length)")
                }
            }
        }
    }

    /// Hardware against software on random buffers of many lengths, at every alignment of the
    /// buffer's start, fresh and continuing from a random checksum.
    func testHardwareAgreesWithSoftware() throws {
        try XCTSkipUnless(CRC32C.Implementation.hardware.isAvailable, "no SSE4.2 crc32 instruction on this CPU")
        var generator = SplitMix64(seed: 13)
        let data = (0..<(70_000 + 16)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var lengths = Array(0...80) + [127, 128, 129, 1447, 1448, 1449, 4095, 4096, 9000, 65535, 65536, 70_000]
        lengths += (0..<40).map { _ in Int.random(in: 0...70_000, using: &generator) }
        data.withUnsafeBytes { all in
            for length in lengths {
                for start in 0..<16 {
                    let bytes = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
                    let seed = UInt32.random(in: 0...UInt32.max, using: &generator)
                    for crc in [0, seed] {
                        XCTAssertEqual(
                            CRC32C.checksum(bytes, continuing: crc, using: .hardware),
                            CRC32C.checksum(bytes, continuing: crc, using: .software),
                            "length \(length) start \(start) continuing \(crc)")
                    }
                }
            }
        }
    }

    /// A running checksum fed in pieces equals the checksum of the whole (the server stream relies
    /// on it), whichever implementation computes each piece.
    func testContinuationEqualsWhole() {
        let whole = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let expected = referenceCRC32C(whole)
        for first in implementations {
            for second in implementations {
                for cut in [0, 1, 7, 8, 9, 500, 999, 1000] {
                    let head = CRC32C.checksum(Array(whole[..<cut]), using: first)
                    XCTAssertEqual(
                        CRC32C.checksum(Array(whole[cut...]), continuing: head, using: second), expected,
                        "\(first) then \(second), cut \(cut)")
                }
            }
        }
    }

    /// Random splits of random buffers into up to eight pieces, each piece checksummed by a randomly
    /// chosen implementation continuing from the last: always the checksum of the whole.
    func testRandomSplitsMixingImplementations() {
        var generator = SplitMix64(seed: 17)
        for _ in 0..<200 {
            let length = Int.random(in: 0...5000, using: &generator)
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let cuts = (0..<Int.random(in: 0...7, using: &generator)).map { _ in
                Int.random(in: 0...length, using: &generator)
            }
            let bounds = [0] + cuts.sorted() + [length]
            var crc: UInt32 = 0
            for (from, to) in zip(bounds, bounds.dropFirst()) {
                let implementation = implementations.randomElement(using: &generator)!
                crc = CRC32C.checksum(Array(data[from..<to]), continuing: crc, using: implementation)
            }
            XCTAssertEqual(crc, referenceCRC32C(data), "length \(length) cuts \(bounds)")
        }
    }

    /// Combining and splitting checksums without the bytes agrees with checksumming the bytes,
    /// for every cut of random data and lengths up to several chunk sizes (a trim takes the
    /// dropped prefix off the running server stream checksum this way), with the parts' checksums
    /// from each implementation.
    func testCombineAndSuffixAgreeWithTheBytes() {
        var generator = SplitMix64(seed: 11)
        for length in [0, 1, 2, 7, 8, 63, 64, 65, 1000, 4096, 70_001] {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let whole = referenceCRC32C(data)
            for cut in Set([0, length / 3, length / 2, length]).sorted() {
                let tail = UInt64(length - cut)
                for implementation in implementations {
                    let a = CRC32C.checksum(Array(data[..<cut]), using: implementation)
                    let b = CRC32C.checksum(Array(data[cut...]), using: implementation)
                    let context = "\(implementation) length \(length) cut \(cut)"
                    XCTAssertEqual(CRC32C.combine(a, b, length: tail), whole, context)
                    XCTAssertEqual(CRC32C.suffix(of: whole, prefix: a, suffixLength: tail), b, context)
                }
            }
        }
        // A shift by a length beyond 2^32 bytes composes like the smaller ones.
        let crc: UInt32 = 0xDEAD_BEEF
        XCTAssertEqual(
            CRC32C.shift(CRC32C.shift(crc, by: 1 << 33), by: 12345), CRC32C.shift(crc, by: (1 << 33) + 12345))
    }
}
