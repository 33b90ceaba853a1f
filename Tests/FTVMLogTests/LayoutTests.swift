import XCTest

@testable import FTVMLog

/// Golden bytes: what a freshly created log and a freshly opened record look like on disk.
final class LayoutTests: LogTestCase {
    // 4 slots, 8 chunks of 64 bytes: 256 (header) + 4 × 448 (slots) + 8 × (16 + 64) (chunks) = 2688.
    private let slotsStart = 256
    private let chunksStart = 256 + 4 * 448

    func testFreshHeaderBytes() throws {
        _ = try ConnectionLog.create(path: path, slots: 4, chunks: 8, chunkSize: 64)
        let bytes = try fileBytes()
        XCTAssertEqual(bytes.count, 2688)
        XCTAssertEqual(Array(bytes[0..<8]), Array("FTVMCLOG".utf8))  // magic
        XCTAssertEqual(Array(bytes[8..<12]), [2, 0, 0, 0])  // version 2
        XCTAssertEqual(Array(bytes[12..<16]), [0x00, 0x01, 0, 0])  // header size 256
        XCTAssertEqual(Array(bytes[16..<24]), [0x80, 0x0A, 0, 0, 0, 0, 0, 0])  // region size 2688
        XCTAssertEqual(Array(bytes[24..<28]), [4, 0, 0, 0])  // slot count
        XCTAssertEqual(Array(bytes[28..<32]), [8, 0, 0, 0])  // chunk count
        XCTAssertEqual(Array(bytes[32..<36]), [64, 0, 0, 0])  // chunk size
        XCTAssertEqual(Array(bytes[36..<40]), [0xE0, 0x33, 0x02, 0x10])  // CRC32C of 0..<36 = 0x100233E0
        XCTAssertEqual(le32(bytes, 36), referenceCRC32C(Array(bytes[0..<36])))
        XCTAssertEqual(Array(bytes[40..<64]), [UInt8](repeating: 0, count: 24))  // reserved
        // Counters: opened, bytes logged, admitted unlogged, unprotected (full), corrupt, rolled back,
        // attaches; gauges: slots in use, chunks in use, bytes held; counters: trims, bytes trimmed,
        // unprotected (budget), reclaimed; gauge: unprotected now.
        for offset in stride(from: 64, to: 120, by: 8) {
            XCTAssertEqual(le64(bytes, offset), 0, "counter at \(offset)")
        }
        for offset in stride(from: 128, to: 192, by: 8) { XCTAssertEqual(le64(bytes, offset), 0, "word at \(offset)") }
        XCTAssertEqual(Array(bytes[192..<256]), [UInt8](repeating: 0, count: 64))  // reserved
    }

    func testFreshSlotsAndChunks() throws {
        _ = try ConnectionLog.create(path: path, slots: 4, chunks: 8, chunkSize: 64)
        let bytes = try fileBytes()
        for slot in 0..<4 {
            let base = slotsStart + slot * 448
            XCTAssertEqual(le64(bytes, base), 0)  // commit marker: sequence 0, in copy 0
            XCTAssertEqual(Array(bytes[base + 8..<base + 64]), [UInt8](repeating: 0, count: 56))
            // Copy 0: a sealed free record. Everything zero but the chunk links and the checksum.
            let copy0 = base + 64
            XCTAssertEqual(Array(bytes[copy0..<copy0 + 84]), [UInt8](repeating: 0, count: 84))
            XCTAssertEqual(le32(bytes, copy0 + 84), 0xFFFF_FFFF)  // first chunk: none
            XCTAssertEqual(le32(bytes, copy0 + 88), 0xFFFF_FFFF)  // last chunk: none
            XCTAssertEqual(Array(bytes[copy0 + 92..<copy0 + 184]), [UInt8](repeating: 0, count: 92))
            XCTAssertEqual(le32(bytes, copy0 + 184), referenceCRC32C(Array(bytes[copy0..<copy0 + 184])))
            XCTAssertEqual(le32(bytes, copy0 + 188), 0)
            // Copy 1: never written (all zero, so it fails its checksum).
            XCTAssertEqual(Array(bytes[base + 256..<base + 448]), [UInt8](repeating: 0, count: 192))
        }
        for chunk in 0..<8 {
            let base = chunksStart + chunk * 80
            XCTAssertEqual(le32(bytes, base), 0xFFFF_FFFF)  // next: none
            XCTAssertEqual(le32(bytes, base + 4), 0xFFFF_FFFF)  // owner slot: none
            XCTAssertEqual(le64(bytes, base + 8), 0)  // owner serial
            XCTAssertEqual(Array(bytes[base + 16..<base + 80]), [UInt8](repeating: 0, count: 64))
        }
    }

    /// A record after open, handshake and one append: every field where `LogLayout` says.
    func testRecordCopyBytes() throws {
        let log = try ConnectionLog.create(path: path, slots: 4, chunks: 8, chunkSize: 64)
        let flow = FlowKey(clientAddress: 0x0A4D_0105, clientPort: 0xC350, serverAddress: 0x0A4D_0002, serverPort: 80)
        let slot = try XCTUnwrap(
            log.open(
                key: flow, clientISN: 0x1122_3344,
                options: SYNOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true, timestamps: true)))
        XCTAssertEqual(slot, Slot(index: 0, serial: 1))
        log.setServerHandshake(slot, serverISN: 0xA0B0_C0D0, options: SYNOptions(maximumSegmentSize: 1400))
        XCTAssertEqual(log.append(slot, seq: 0x1122_3345, Array("GET / HTTP/1.1\r\n".utf8)), .logged(16))
        let bytes = try fileBytes()

        XCTAssertEqual(le64(bytes, slotsStart), 3)  // marker: sequence 3 (open, handshake, append)
        let copy = slotsStart + 256  // odd sequence → copy 1
        XCTAssertEqual(le64(bytes, copy + 0), 3)  // sequence
        XCTAssertEqual(le64(bytes, copy + 8), 1)  // serial
        XCTAssertEqual(le32(bytes, copy + 16), 1)  // state open
        XCTAssertEqual(le32(bytes, copy + 20), 0x01)  // flags: server handshake seen
        XCTAssertEqual(Array(bytes[copy + 24..<copy + 28]), [0x05, 0x01, 0x4D, 0x0A])  // client 10.77.1.5
        XCTAssertEqual(Array(bytes[copy + 28..<copy + 32]), [0x02, 0x00, 0x4D, 0x0A])  // server 10.77.0.2
        XCTAssertEqual(Array(bytes[copy + 32..<copy + 34]), [0x50, 0xC3])  // client port 50000
        XCTAssertEqual(Array(bytes[copy + 34..<copy + 36]), [80, 0])  // server port 80
        XCTAssertEqual(le32(bytes, copy + 36), 0x1122_3344)  // client ISN
        XCTAssertEqual(Array(bytes[copy + 40..<copy + 44]), [0xB4, 0x05, 7, 0x0F])  // MSS 1460, wscale 7, all present
        XCTAssertEqual(le32(bytes, copy + 44), 0xA0B0_C0D0)  // server ISN
        XCTAssertEqual(Array(bytes[copy + 48..<copy + 52]), [0x78, 0x05, 0, 0x01])  // MSS 1400 only
        XCTAssertEqual(le32(bytes, copy + 52), 0xA0B0_C0D0)  // acked by client: nothing yet
        XCTAssertEqual(le32(bytes, copy + 56), 0xA0B0_C0D1)  // snd_max: the SYN
        XCTAssertEqual(Array(bytes[copy + 60..<copy + 76]), [UInt8](repeating: 0, count: 16))  // timestamps
        XCTAssertEqual(le32(bytes, copy + 76), 0)  // server stream CRC of nothing
        XCTAssertEqual(le32(bytes, copy + 80), 0xA0B0_C0D1)  // server stream end
        XCTAssertEqual(le32(bytes, copy + 84), 0)  // first chunk
        XCTAssertEqual(le32(bytes, copy + 88), 0)  // last chunk
        XCTAssertEqual(le32(bytes, copy + 92), 0)
        XCTAssertEqual(le64(bytes, copy + 96), 16)  // client bytes
        XCTAssertEqual(le64(bytes, copy + 104), 0)  // server stream bytes
        XCTAssertEqual(le64(bytes, copy + 112), 0)  // timestamp delta, serving window scale
        XCTAssertEqual(Array(bytes[copy + 120..<copy + 184]), [UInt8](repeating: 0, count: 64))  // replay start …
        XCTAssertEqual(le32(bytes, copy + 184), referenceCRC32C(Array(bytes[copy..<copy + 184])))
        // Copy 0 still holds sequence 2 (the handshake), sealed: the state before the append.
        XCTAssertEqual(le64(bytes, slotsStart + 64), 2)
        XCTAssertEqual(le64(bytes, slotsStart + 64 + 96), 0)
        // Chunk 0: no next, owned by slot 0 / connection 1, then the payload.
        XCTAssertEqual(le32(bytes, chunksStart), 0xFFFF_FFFF)
        XCTAssertEqual(le32(bytes, chunksStart + 4), 0)
        XCTAssertEqual(le64(bytes, chunksStart + 8), 1)
        XCTAssertEqual(Array(bytes[chunksStart + 16..<chunksStart + 32]), Array("GET / HTTP/1.1\r\n".utf8))
        // Header: one connection, 16 bytes; one slot and one chunk in use.
        XCTAssertEqual(le64(bytes, 64), 1)
        XCTAssertEqual(le64(bytes, 72), 16)
        XCTAssertEqual(le64(bytes, 128), 1)
        XCTAssertEqual(le64(bytes, 136), 1)
        XCTAssertEqual(le64(bytes, 144), 16)
    }

    func testGeometryIsValidated() {
        for (slots, chunks, size) in [
            (0, 8, 64), (4, 0, 64), (4, 8, 48), (4, 8, 100), (LogLayout.maximumSlots + 1, 8, 64),
        ] {
            XCTAssertThrowsError(try ConnectionLog.create(path: path, slots: slots, chunks: chunks, chunkSize: size)) {
                guard case LogError.invalidGeometry = $0 else { return XCTFail("\($0)") }
            }
        }
    }
}
