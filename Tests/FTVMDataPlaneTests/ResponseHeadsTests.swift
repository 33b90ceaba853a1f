import FTVMLog
import Foundation
import XCTest

@testable import FTVMDataPlane

/// The heads kept for range resumes: in memory, and in a file a restarted daemon takes up.
final class ResponseHeadsTests: XCTestCase {
    private var path = ""

    override func setUp() { path = "/dev/shm/ftvm-test-heads-\(UUID().uuidString)" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: path) }

    private let head = Array("HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nAccept-Ranges: bytes\r\n\r\n".utf8)

    private func keep(_ heads: ResponseHeads, _ slot: Slot, _ bytes: [UInt8], at offset: UInt64) {
        bytes.withUnsafeBytes { heads.keep(slot, $0, at: offset) }
    }

    func testAHeadIsKeptInPartsAndOnlyForItsConnectionAndResponse() {
        let heads = ResponseHeads(slots: 4)
        let slot = Slot(index: 2, serial: 17)
        heads.begin(slot, at: 500)
        keep(heads, slot, Array(head[..<10]), at: 500)
        keep(heads, slot, Array(head[5...]), at: 505)  // overlapping: only the new bytes count
        XCTAssertEqual(heads.response(slot, startingAt: 500), head)
        XCTAssertNil(heads.response(slot, startingAt: 0), "another response")
        XCTAssertNil(heads.response(Slot(index: 2, serial: 18), startingAt: 500), "another connection in the slot")
        keep(heads, slot, [1, 2, 3], at: 900)  // a gap: not kept
        XCTAssertEqual(heads.response(slot, startingAt: 500), head)
        heads.forget(slot)
        XCTAssertNil(heads.response(slot, startingAt: 500))
    }

    func testAtMostCapacityBytesAreKept() {
        let heads = ResponseHeads(slots: 1)
        let slot = Slot(index: 0, serial: 1)
        heads.begin(slot, at: 0)
        keep(heads, slot, [UInt8](repeating: 65, count: ResponseHeads.capacity + 100), at: 0)
        XCTAssertEqual(heads.response(slot, startingAt: 0)?.count, ResponseHeads.capacity)
    }

    /// What one daemon kept, the next one reads from the same file; a head torn by a daemon
    /// killed between its bytes and its count reads as none; a file of another size is remade.
    func testAFileOutlivesItsDaemonAndATornHeadReadsAsNone() throws {
        let slot = Slot(index: 3, serial: 9)
        do {
            let first = try ResponseHeads.persistent(path: path, slots: 8)
            first.begin(slot, at: 1000)
            keep(first, slot, head, at: 1000)
        }
        let second = try ResponseHeads.persistent(path: path, slots: 8)
        XCTAssertEqual(second.response(slot, startingAt: 1000), head)

        // Torn: the bytes of a longer head written, the checksum not (the count says 60).
        let region = try Data(contentsOf: URL(fileURLWithPath: path))
        var torn = region
        let count = ResponseHeads.headerSize + slot.index * ResponseHeads.stride + 16
        torn[count] = 60
        try torn.write(to: URL(fileURLWithPath: path))
        XCTAssertNil(try ResponseHeads.persistent(path: path, slots: 8).response(slot, startingAt: 1000))

        let other = try ResponseHeads.persistent(path: path, slots: 16)
        XCTAssertNil(other.response(slot, startingAt: 1000), "another geometry: made afresh")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual(
            attributes[.size] as? Int, ResponseHeads.headerSize + 16 * ResponseHeads.stride)
    }

    func testAFileThatCannotBeMadeSaysWhy() {
        XCTAssertThrowsError(try ResponseHeads.persistent(path: "/nonexistent-dir/heads", slots: 4))
    }
}
