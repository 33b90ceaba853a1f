import FTVMWire
import Glibc
import XCTest

@testable import FTVMLog

/// A restarted daemon re-attaches: what was committed comes back, what was torn falls back to the
/// copy before it, what cannot be verified is freed and counted, and a bad header is refused.
final class RestartTests: LogTestCase {
    private let options = SYNOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true, timestamps: true)
    // 4 slots, 16 chunks of 64 bytes.
    private func slotOffset(_ slot: Int) -> Int { 256 + slot * 448 }
    private func copyOffset(_ slot: Int, _ copy: Int) -> Int { slotOffset(slot) + (copy == 0 ? 64 : 256) }
    private func chunkOffset(_ chunk: Int) -> Int { 256 + 4 * 448 + chunk * 80 }

    /// Three connections in various states; returns their slots.
    private func populate() throws -> [Slot] {
        let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
        let a = try XCTUnwrap(log.open(key: key(1), clientISN: 100, options: options))
        let b = try XCTUnwrap(log.open(key: key(2), clientISN: 0xFFFF_FF00, options: SYNOptions()))
        let c = try XCTUnwrap(log.open(key: key(3), clientISN: 300, options: options))
        log.setServerHandshake(a, serverISN: 9000, options: options)
        XCTAssertEqual(log.append(a, seq: 101, stream(1, 0..<150)), .logged(150))
        XCTAssertEqual(log.append(b, seq: 0xFFFF_FF01, stream(2, 0..<300)), .logged(300))
        XCTAssertEqual(log.append(c, seq: 301, stream(3, 0..<10)), .logged(10))
        log.serverSent(a, endSeq: 9001 + 40, stream(11, 0..<40))
        log.noteClientAck(a, ack: 9021)
        log.noteTimestamps(a, fromClient: true, tsval: 5, tsecr: 6)
        XCTAssertEqual(log.appendClientFIN(c, seq: 311), .logged(0))
        return [a, b, c]
    }

    func testReattachRestoresRecordsAndBytes() throws {
        let (slots, before, usage) = try { () throws -> ([Slot], [ConnectionRecord], LogUsage) in
            let slots = try populate()
            let log = try ConnectionLog.attach(path: path)  // (populate's log is gone)
            return (slots, log.records(), log.usage)
        }()
        XCTAssertEqual(before.count, 3)
        XCTAssertEqual(usage.counters.attaches, 1)

        let log = try ConnectionLog.attach(path: path)
        XCTAssertEqual(log.records(), before)
        XCTAssertEqual(log.clientBytes(slots[0]), stream(1, 0..<150))
        XCTAssertEqual(log.clientBytes(slots[1]), stream(2, 0..<300))
        XCTAssertEqual(log.clientBytes(slots[2]), stream(3, 0..<10))
        let a = try XCTUnwrap(log.record(slots[0]))
        XCTAssertEqual(a.serverAckedByClient, 9021)
        XCTAssertEqual(a.clientTimestamps, TCPTimestamps(value: 5, echoReply: 6))
        XCTAssertEqual(a.serverStream.crc, referenceCRC32C(stream(11, 0..<40)))
        XCTAssertEqual(log.records()[2].state, .closing)
        var after = log.usage
        XCTAssertEqual(after.slotsUsed, 3)
        XCTAssertEqual(after.chunksUsed, 3 + 5 + 1)
        XCTAssertEqual(after.bytesHeld, 460)
        XCTAssertEqual(after.counters.connectionsOpened, 3)
        XCTAssertEqual(after.counters.attaches, 2)
        XCTAssertEqual(after.counters.corruptRecords, 0)

        // The writer carries on: lookups work, appends continue the chains, a close frees chunks,
        // a new connection gets a new serial.
        XCTAssertEqual(log.lookup(key(2)), slots[1])
        XCTAssertEqual(log.append(slots[1], seq: 0xFFFF_FF01 &+ 300, stream(2, 300..<400)), .logged(100))
        XCTAssertEqual(log.clientBytes(slots[1]), stream(2, 0..<400))
        log.close(slots[0])
        let d = try XCTUnwrap(log.open(key: key(4), clientISN: 1, options: options))
        XCTAssertEqual(d.serial, 4)
        XCTAssertEqual(log.append(d, seq: 2, stream(4, 0..<500)), .logged(500))
        after = log.usage
        XCTAssertEqual(after.chunksUsed, 7 + 1 + 8)
        XCTAssertEqual(log.clientBytes(d), stream(4, 0..<500))
        XCTAssertEqual(log.clientBytes(slots[1]), stream(2, 0..<400))
    }

    /// A writer killed mid-update: the new copy is torn and the marker still names the previous
    /// copy. The previous state is simply the committed one; the client retransmits the rest.
    func testTornWriteLeavesThePreviousState() throws {
        let b: Slot
        do {
            let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
            b = try XCTUnwrap(log.open(key: key(2), clientISN: 200, options: options))
            XCTAssertEqual(log.append(b, seq: 201, stream(2, 0..<100)), .logged(100))  // sequence 2, copy 0
        }
        // What the killed update left: chunk bytes and half a copy 1 with sequence 3, marker at 2.
        try poke(UInt64(3), at: copyOffset(0, 1))
        try poke(UInt64(130), at: copyOffset(0, 1) + 96)
        let log = try ConnectionLog.attach(path: path)
        let record = try XCTUnwrap(log.record(b))
        XCTAssertEqual(record.clientBytesLogged, 100)
        XCTAssertFalse(record.rolledBack)
        XCTAssertEqual(log.clientBytes(b), stream(2, 0..<100))
        XCTAssertEqual(log.usage.counters.rolledBackRecords, 0)
        XCTAssertEqual(log.usage.counters.corruptRecords, 0)
    }

    /// The newest (committed) copy damaged: the previous copy, and the bytes it covers, are used;
    /// the client retransmits the rest. Because that copy was committed, the primary may have had
    /// the lost update, so the record is counted and marked rolled back for replay to see.
    func testDamagedNewestCopyFallsBackToPrevious() throws {
        let b: Slot
        do {
            let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
            _ = log.open(key: key(1), clientISN: 100, options: options)
            b = try XCTUnwrap(log.open(key: key(2), clientISN: 200, options: options))
            XCTAssertEqual(log.append(b, seq: 201, stream(2, 0..<100)), .logged(100))  // sequence 2
            XCTAssertEqual(log.append(b, seq: 301, stream(2, 100..<130)), .logged(30))  // sequence 3
        }
        XCTAssertEqual(b.index, 1)
        try flip(at: copyOffset(1, 1) + 100, count: 3)  // inside the client byte count of copy 1
        let log = try ConnectionLog.attach(path: path)
        let record = try XCTUnwrap(log.record(b))
        XCTAssertEqual(record.clientBytesLogged, 100)
        XCTAssertTrue(record.rolledBack)
        XCTAssertEqual(log.clientBytes(b), stream(2, 0..<100))
        XCTAssertEqual(log.records().count, 2)
        XCTAssertEqual(log.records().map(\.rolledBack), [false, true])
        XCTAssertEqual(log.usage.counters.rolledBackRecords, 1)
        XCTAssertEqual(log.usage.counters.corruptRecords, 0)
        XCTAssertEqual(log.usage.chunksUsed, 2)
        // The retransmission is logged again and the next update overwrites the torn copy.
        XCTAssertEqual(log.append(b, seq: 301, stream(2, 100..<130)), .logged(30))
        XCTAssertEqual(log.clientBytes(b), stream(2, 0..<130))
        let again = try ConnectionLog.attach(path: path)
        XCTAssertEqual(again.clientBytes(b), stream(2, 0..<130))
        XCTAssertEqual(again.usage.counters.rolledBackRecords, 1)
        XCTAssertEqual(again.record(b)?.rolledBack, true)  // until the connection closes
    }

    /// A complete copy whose marker store was cut off (killed between the two): it verifies and
    /// covers only bytes already written, so it is kept.
    func testCompleteCopyWithUnpublishedMarkerIsKept() throws {
        do {
            let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
            let a = try XCTUnwrap(log.open(key: key(1), clientISN: 100, options: options))
            XCTAssertEqual(log.append(a, seq: 101, stream(1, 0..<100)), .logged(100))  // sequence 2
        }
        try poke(UInt64(1), at: slotOffset(0))  // the marker still says sequence 1
        let log = try ConnectionLog.attach(path: path)
        let slot = try XCTUnwrap(log.lookup(key(1)))
        XCTAssertEqual(log.clientBytes(slot), stream(1, 0..<100))
        XCTAssertEqual(log.usage.counters.rolledBackRecords, 0)
    }

    /// Both copies damaged: the record is counted, freed with its chunks, the others are intact.
    func testBothCopiesCorruptFreesTheRecord() throws {
        let slots = try populate()
        try flip(at: copyOffset(slots[1].index, 0) + 40)
        try flip(at: copyOffset(slots[1].index, 1) + 8)
        let log = try ConnectionLog.attach(path: path)
        XCTAssertEqual(log.records().map(\.key), [key(1), key(3)])
        XCTAssertNil(log.lookup(key(2)))
        XCTAssertEqual(log.clientBytes(slots[1]), [])
        XCTAssertEqual(log.clientBytes(slots[0]), stream(1, 0..<150))
        XCTAssertEqual(log.clientBytes(slots[2]), stream(3, 0..<10))
        let usage = log.usage
        XCTAssertEqual(usage.counters.corruptRecords, 1)
        XCTAssertEqual(usage.slotsUsed, 2)
        XCTAssertEqual(usage.chunksUsed, 4)
        // Its slot and chunks are usable again.
        let d = try XCTUnwrap(log.open(key: key(4), clientISN: 0, options: options))
        XCTAssertEqual(log.append(d, seq: 1, stream(4, 0..<(12 * 64))), .logged(12 * 64))
        XCTAssertEqual(log.clientBytes(d), stream(4, 0..<(12 * 64)))
        // The freed slot holds valid free copies: a later attach finds nothing more to count.
        let again = try ConnectionLog.attach(path: path)
        XCTAssertEqual(again.usage.counters.corruptRecords, 1)
        XCTAssertEqual(again.records().count, 3)
    }

    /// A just-opened record whose only open copy is damaged falls back to the free copy before it:
    /// a connection may be lost, so it counts as corrupt, not as rolled back.
    func testFallbackToAFreeCopyCountsAsCorrupt() throws {
        do {
            let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
            _ = try XCTUnwrap(log.open(key: key(1), clientISN: 100, options: options))  // sequence 1, copy 1
        }
        try flip(at: copyOffset(0, 1) + 36)
        let log = try ConnectionLog.attach(path: path)
        XCTAssertEqual(log.records(), [])
        XCTAssertEqual(log.usage.counters.corruptRecords, 1)
        XCTAssertEqual(log.usage.counters.rolledBackRecords, 0)
        XCTAssertEqual(log.usage.slotsUsed, 0)
    }

    /// A chunk whose owner tag does not name the record (overwritten, or handed to another
    /// connection) makes that record's chain unverifiable.
    func testChunkOwnedBySomeoneElseFreesTheRecord() throws {
        let slots = try populate()
        let a = slots[0]  // chunks 0, 1, 2 (appended first)
        try poke(UInt32(3), at: chunkOffset(1) + 4)  // owner slot of its second chunk
        let log = try ConnectionLog.attach(path: path)
        XCTAssertNil(log.record(a))
        XCTAssertEqual(log.usage.counters.corruptRecords, 1)
        XCTAssertEqual(log.usage.chunksUsed, 6)
        XCTAssertEqual(log.clientBytes(slots[1]), stream(2, 0..<300))
    }

    /// A chain link pointing back into itself (a cycle) is caught, not followed forever. b's newest
    /// copy is unusable; its copy before (just opened, no bytes) is, marked rolled back.
    func testChainCycleRollsTheRecordBack() throws {
        let slots = try populate()
        // b's chunks are 3 → 4 → 5 → 6 → 7. Make it 3 → 4 → 7 → 4 → 7: five chunks, ending at the
        // record's last chunk, so only the "each chunk claimed once" rule can catch it.
        try poke(UInt32(7), at: chunkOffset(4))
        try poke(UInt32(4), at: chunkOffset(7))
        let log = try ConnectionLog.attach(path: path)
        let b = try XCTUnwrap(log.record(slots[1]))
        XCTAssertEqual(b.clientBytesLogged, 0)
        XCTAssertTrue(b.rolledBack)
        XCTAssertEqual(log.clientBytes(slots[1]), [])
        XCTAssertEqual(log.usage.counters.rolledBackRecords, 1)
        XCTAssertEqual(log.usage.counters.corruptRecords, 0)
        XCTAssertEqual(log.usage.chunksUsed, 4)  // b's five are free again
    }

    // MARK: Bad headers

    private func attachError() throws -> LogError? {
        do {
            _ = try ConnectionLog.attach(path: path)
            return nil
        } catch {
            return error
        }
    }

    func testBadMagicIsRefused() throws {
        _ = try populate()
        try flip(at: 0, count: 1)
        let error = try XCTUnwrap(try attachError())
        guard case .badMagic(path, _) = error else { return XCTFail("\(error)") }
        XCTAssertTrue(error.description.contains("delete it with `ftvm down` or `rm \(path)`"), error.description)
    }

    func testUnsupportedVersionIsRefused() throws {
        _ = try populate()
        try poke(UInt32(1), at: 8)  // a log the previous layout wrote
        let error = try XCTUnwrap(try attachError())
        XCTAssertEqual(error, .unsupportedVersion(path: path, found: 1))
        XCTAssertTrue(error.description.contains("ftvm down"))
    }

    func testSizeMismatchIsRefused() throws {
        _ = try populate()
        try poke(UInt64(4096), at: 16)  // the size field
        XCTAssertEqual(try attachError(), .sizeMismatch(path: path, header: 4096, actual: 256 + 4 * 448 + 16 * 80))
        try poke(UInt64(256 + 4 * 448 + 16 * 80), at: 16)
        XCTAssertNil(try attachError())
        XCTAssertEqual(truncate(path, 1000), 0)  // the file shrank
        XCTAssertEqual(
            try attachError(), .sizeMismatch(path: path, header: UInt64(256 + 4 * 448 + 16 * 80), actual: 1000))
        XCTAssertEqual(truncate(path, 100), 0)
        XCTAssertEqual(try attachError(), .tooSmall(path: path, size: 100))
    }

    func testDamagedGeometryIsRefused() throws {
        _ = try populate()
        try poke(UInt32(5), at: 24)  // slot count 4 → 5: the checksum no longer matches
        let error = try XCTUnwrap(try attachError())
        XCTAssertEqual(error, .badHeaderChecksum(path: path))
        XCTAssertTrue(error.description.contains("ftvm down"))
    }

    func testMissingFileIsReported() throws {
        let error = try XCTUnwrap(try attachError())
        guard case .cannotMap(path, let errno) = error else { return XCTFail("\(error)") }
        XCTAssertEqual(errno, .noSuchFileOrDirectory)
    }

    func testCreateReplacesAnOldLog() throws {
        _ = try populate()
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 2, chunkSize: 64)
        XCTAssertEqual(log.records(), [])
        XCTAssertEqual(log.usage.counters.connectionsOpened, 0)
        XCTAssertEqual(try fileBytes().count, 256 + 2 * 448 + 2 * 80)
    }
}
