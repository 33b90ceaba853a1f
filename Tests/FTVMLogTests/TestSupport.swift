import Foundation
import Glibc
import XCTest

@testable import FTVMLog

/// A log file in /dev/shm (the tmpfs the daemon uses), removed when the test ends.
class LogTestCase: XCTestCase {
    var path = ""

    override func setUp() {
        path = "/dev/shm/ftvm-log-test-\(UUID().uuidString)"
    }

    override func tearDown() {
        unlink(path)
    }

    /// The file's bytes.
    func fileBytes() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// XORs `mask` into `count` bytes at `offset` of the file (the log must not be mapped by a writer
    /// that will touch them again).
    func flip(at offset: Int, count: Int = 4, mask: UInt8 = 0xA5) throws {
        var bytes = try fileBytes()
        for i in offset..<offset + count { bytes[i] ^= mask }
        try writeFile(bytes)
    }

    func poke(_ value: some FixedWidthInteger, at offset: Int) throws {
        var bytes = try fileBytes()
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, byte) in raw.enumerated() { bytes[offset + i] = byte }
        }
        try writeFile(bytes)
    }

    func writeFile(_ bytes: [UInt8]) throws {
        // In place (not a rename), so the inode a mapping might share stays the same.
        let fd = Glibc.open(path, O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { Glibc.close(fd) }
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        XCTAssertEqual(written, bytes.count)
    }
}

extension ConnectionLog {
    /// Appends an array (test convenience).
    @discardableResult
    func append(_ slot: Slot, seq: UInt32, _ bytes: [UInt8]) -> AppendResult {
        bytes.withUnsafeBytes { appendClientPayload(slot, seq: seq, bytes: $0) }
    }

    func serverSent(_ slot: Slot, endSeq: UInt32, _ payload: [UInt8], fin: Bool = false) {
        payload.withUnsafeBytes { noteServerSent(slot, endSeq: endSeq, payload: $0, fin: fin) }
    }
}

/// A deterministic byte stream: byte `i` of stream `id` (so a retransmission carries the same
/// bytes as the original, as it would on the wire).
func streamByte(_ id: UInt64, _ i: Int) -> UInt8 {
    var z = id &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i)
    z = (z ^ (z >> 29)) &* 0xBF58_476D_1CE4_E5B9
    return UInt8(truncatingIfNeeded: z >> 32)
}

func stream(_ id: UInt64, _ range: Range<Int>) -> [UInt8] { range.map { streamByte(id, $0) } }

func key(_ n: Int, port: UInt16 = 80) -> FlowKey {
    FlowKey(
        clientAddress: 0x0A4D_0100 | UInt32(n & 0xFF), clientPort: UInt16(40000 + n), serverAddress: 0x0A4D_0002,
        serverPort: port)
}

/// The bitwise definition of CRC-32C, to check the table-driven one against.
func referenceCRC32C(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
    var state = ~crc
    for byte in bytes {
        state ^= UInt32(byte)
        for _ in 0..<8 { state = state & 1 == 1 ? (state >> 1) ^ 0x82F6_3B78 : state >> 1 }
    }
    return ~state
}

func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
}

func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
}
