import FTVMWire
import Foundation
import XCTest

@testable import FTVMLog

final class ConnectionLogTests: LogTestCase {
    private let options = SYNOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true, timestamps: true)

    /// In order, retransmitted, overlapping and out-of-order segments across chunk boundaries: the
    /// log holds exactly the stream, each byte once.
    func testAppendsLogEachByteOnce() throws {
        let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
        let isn: UInt32 = 1000
        let slot = try XCTUnwrap(log.open(key: key(1), clientISN: isn, options: options))
        log.setServerHandshake(slot, serverISN: 5000, options: SYNOptions(maximumSegmentSize: 1400))
        let data = stream(1, 0..<400)
        var expected: [UInt8] = []
        func seg(_ range: Range<Int>) -> (UInt32, [UInt8]) {
            (isn &+ 1 &+ UInt32(range.lowerBound), Array(data[range]))
        }

        var (seq, bytes) = seg(0..<50)
        XCTAssertEqual(log.append(slot, seq: seq, bytes), .logged(50))
        expected += data[0..<50]
        (seq, bytes) = seg(0..<50)  // retransmission
        XCTAssertEqual(log.append(slot, seq: seq, bytes), .duplicate)
        (seq, bytes) = seg(10..<20)  // retransmission of a middle part
        XCTAssertEqual(log.append(slot, seq: seq, bytes), .duplicate)
        (seq, bytes) = seg(100..<150)  // a gap: 50..<100 missing
        XCTAssertEqual(log.append(slot, seq: seq, bytes), .gap)
        XCTAssertFalse(AppendResult.gap.mayForward)
        (seq, bytes) = seg(30..<130)  // overlap: 30..<50 known, 80 new bytes crossing into chunk 1 and 2
        XCTAssertEqual(log.append(slot, seq: seq, bytes), .partial(80))
        expected += data[50..<130]
        (seq, bytes) = seg(130..<400)  // several chunks at once
        XCTAssertEqual(log.append(slot, seq: seq, bytes), .logged(270))
        expected += data[130..<400]
        XCTAssertEqual(log.append(slot, seq: 7, []), .duplicate)  // no payload: nothing to log

        XCTAssertEqual(log.clientBytes(slot), expected)
        XCTAssertEqual(expected, data)
        let record = try XCTUnwrap(log.record(slot))
        XCTAssertEqual(record.clientBytesLogged, 400)
        XCTAssertEqual(record.nextClientSequence, isn &+ 401)
        XCTAssertEqual(record.clientOptions, options)
        XCTAssertEqual(record.serverISN, 5000)
        XCTAssertEqual(record.serverOptions, SYNOptions(maximumSegmentSize: 1400))
        XCTAssertEqual(log.usage.chunksUsed, 7)  // ceil(400 / 64)
        XCTAssertEqual(log.usage.bytesHeld, 400)
        XCTAssertEqual(log.usage.counters.bytesLogged, 400)
    }

    /// An ISN just below 2^32: the stream wraps after 255 bytes, and every comparison still works.
    func testWraparoundISN() throws {
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 16, chunkSize: 64)
        let isn: UInt32 = 0xFFFF_FF00
        let slot = try XCTUnwrap(log.open(key: key(2), clientISN: isn, options: options))
        let data = stream(2, 0..<600)
        func seq(_ offset: Int) -> UInt32 { isn &+ 1 &+ UInt32(offset) }
        XCTAssertEqual(seq(255), 0)  // byte 255 sits at sequence 0
        XCTAssertEqual(log.append(slot, seq: seq(0), Array(data[0..<200])), .logged(200))
        XCTAssertEqual(log.append(slot, seq: seq(300), Array(data[300..<400])), .gap)  // beyond, across the wrap
        XCTAssertEqual(log.append(slot, seq: seq(150), Array(data[150..<300])), .partial(100))  // spans the wrap
        XCTAssertEqual(log.append(slot, seq: seq(250), Array(data[250..<260])), .duplicate)  // around 0
        XCTAssertEqual(log.append(slot, seq: seq(300), Array(data[300..<600])), .logged(300))
        XCTAssertEqual(log.clientBytes(slot), data)
        XCTAssertEqual(log.record(slot)?.nextClientSequence, seq(600))
        XCTAssertEqual(log.record(slot)?.nextClientSequence, 600 - 255)

        // The server side wraps too.
        log.setServerHandshake(slot, serverISN: 0xFFFF_FFF0, options: options)
        let reply = stream(3, 0..<64)
        log.serverSent(slot, endSeq: 0xFFFF_FFF1 &+ 64, reply)
        log.noteClientAck(slot, ack: 0xFFFF_FFF1 &+ 40)
        let record = try XCTUnwrap(log.record(slot))
        XCTAssertEqual(record.serverSendMax, 0x31)
        XCTAssertEqual(record.serverAckedByClient, 0x19)
        XCTAssertEqual(
            record.serverStream, StreamChecksum(crc: referenceCRC32C(reply), byteCount: 64, endSequence: 0x31))
    }

    func testClientFIN() throws {
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 4, chunkSize: 64)
        let slot = try XCTUnwrap(log.open(key: key(1), clientISN: 10, options: options))
        XCTAssertEqual(log.append(slot, seq: 11, [1, 2, 3]), .logged(3))
        XCTAssertEqual(log.appendClientFIN(slot, seq: 15), .gap)  // byte 14 missing
        XCTAssertEqual(log.appendClientFIN(slot, seq: 14), .logged(0))
        XCTAssertEqual(log.appendClientFIN(slot, seq: 14), .duplicate)  // FIN retransmitted
        XCTAssertEqual(log.append(slot, seq: 11, [1, 2, 3]), .duplicate)
        XCTAssertEqual(log.append(slot, seq: 14, [4]), .gap)  // data after the FIN
        let record = try XCTUnwrap(log.record(slot))
        XCTAssertEqual(record.state, .closing)
        XCTAssertTrue(record.clientFINLogged)
        XCTAssertEqual(record.nextClientSequence, 15)
        XCTAssertEqual(log.clientBytes(slot), [1, 2, 3])

        // A RST seen by the relay: closing, still logged and appendable until `close`.
        let other = try XCTUnwrap(log.open(key: key(2), clientISN: 0, options: options))
        log.markClosing(other)
        XCTAssertEqual(log.record(other)?.state, .closing)
        XCTAssertEqual(log.append(other, seq: 1, [9]), .logged(1))
        XCTAssertEqual(log.records().map(\.state), [.closing, .closing])
    }

    /// ACKs, snd_max, the server stream checksum (retransmission, overlap, hole) and timestamps.
    func testServerSideTracking() throws {
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 4, chunkSize: 64)
        let slot = try XCTUnwrap(log.open(key: key(1), clientISN: 10, options: options))
        // Before the SYN/ACK there is no server side to track.
        log.noteClientAck(slot, ack: 99)
        XCTAssertNil(log.record(slot)?.serverISN)
        log.setServerHandshake(slot, serverISN: 100, options: options)
        let reply = stream(9, 0..<300)
        log.noteClientAck(slot, ack: 101)  // ACK of the SYN/ACK
        log.serverSent(slot, endSeq: 201, Array(reply[0..<100]))
        log.serverSent(slot, endSeq: 151, Array(reply[0..<50]))  // retransmission: nothing new
        log.serverSent(slot, endSeq: 251, Array(reply[50..<150]))  // overlap: 50 new
        log.serverSent(slot, endSeq: 351, Array(reply[200..<250]))  // a hole (150..<200): not covered
        log.noteClientAck(slot, ack: 180)
        log.noteClientAck(slot, ack: 150)  // older ACK: ignored
        log.noteClientAck(slot, ack: 400)  // beyond snd_max: ignored
        var record = try XCTUnwrap(log.record(slot))
        XCTAssertEqual(record.serverSendMax, 351)
        XCTAssertEqual(record.serverAckedByClient, 180)
        XCTAssertEqual(
            record.serverStream,
            StreamChecksum(crc: referenceCRC32C(Array(reply[0..<150])), byteCount: 150, endSequence: 251))

        // The hole is filled by a retransmission; later bytes continue the checksum, the FIN ends it.
        log.serverSent(slot, endSeq: 301, Array(reply[150..<200]))
        log.serverSent(slot, endSeq: 352, Array(reply[200..<250]), fin: true)
        record = try XCTUnwrap(log.record(slot))
        XCTAssertEqual(
            record.serverStream,
            StreamChecksum(crc: referenceCRC32C(Array(reply[0..<250])), byteCount: 250, endSequence: 351))
        XCTAssertEqual(record.serverSendMax, 352)
        XCTAssertTrue(record.serverFINSent)
        XCTAssertEqual(record.state, .closing)

        log.noteTimestamps(slot, fromClient: true, tsval: 0xFFFF_FFF0, tsecr: 7)
        log.noteTimestamps(slot, fromClient: true, tsval: 0x10, tsecr: 8)  // newer, across the wrap
        log.noteTimestamps(slot, fromClient: true, tsval: 0xFFFF_FFF5, tsecr: 9)  // reordered: older
        log.noteTimestamps(slot, fromClient: false, tsval: 500, tsecr: 0x10)
        record = try XCTUnwrap(log.record(slot))
        XCTAssertEqual(record.clientTimestamps, TCPTimestamps(value: 0x10, echoReply: 8))
        XCTAssertEqual(record.serverTimestamps, TCPTimestamps(value: 500, echoReply: 0x10))
    }

    func testCloseFreesChunksAndReusesSlots() throws {
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 8, chunkSize: 64)
        let a = try XCTUnwrap(log.open(key: key(1), clientISN: 1, options: options))
        let b = try XCTUnwrap(log.open(key: key(2), clientISN: 2, options: options))
        XCTAssertNil(log.open(key: key(3), clientISN: 3, options: options))  // no slot
        XCTAssertEqual(log.usage.counters.fullRejections, 1)
        XCTAssertEqual(log.append(a, seq: 2, stream(1, 0..<200)), .logged(200))
        XCTAssertEqual(log.append(b, seq: 3, stream(2, 0..<70)), .logged(70))
        XCTAssertEqual(log.usage.chunksUsed, 6)
        log.close(a)
        log.close(a)  // twice: nothing
        XCTAssertNil(log.lookup(key(1)))
        XCTAssertEqual(log.clientBytes(a), [])
        XCTAssertNil(log.record(a))
        XCTAssertEqual(log.usage.chunksUsed, 2)
        let c = try XCTUnwrap(log.open(key: key(3), clientISN: 3, options: options))
        XCTAssertEqual(c.index, a.index)  // the slot is reused …
        XCTAssertNotEqual(c.serial, a.serial)  // … by a different connection
        XCTAssertEqual(log.lookup(key(3)), c)
        XCTAssertEqual(log.append(c, seq: 4, stream(3, 0..<384)), .logged(384))  // all 6 free chunks
        XCTAssertEqual(log.clientBytes(b), stream(2, 0..<70))
        XCTAssertEqual(log.clientBytes(c), stream(3, 0..<384))
        log.close(b)
        log.close(c)
        let usage = log.usage
        XCTAssertEqual(usage.slotsUsed, 0)
        XCTAssertEqual(usage.chunksUsed, 0)
        XCTAssertEqual(usage.bytesHeld, 0)
        XCTAssertEqual(usage.counters.connectionsOpened, 3)
        XCTAssertEqual(usage.counters.bytesLogged, 654)
        XCTAssertEqual(log.records(), [])
    }

    /// A full log delays segments (`.full`, counted) and refuses connections; a close makes room.
    func testFullLog() throws {
        let log = try ConnectionLog.create(path: path, slots: 4, chunks: 4, chunkSize: 64)
        log.admissionReserve = 1
        let a = try XCTUnwrap(log.open(key: key(1), clientISN: 0, options: options))
        let b = try XCTUnwrap(log.open(key: key(2), clientISN: 0, options: options))
        XCTAssertEqual(log.append(a, seq: 1, stream(1, 0..<192)), .logged(192))  // 3 chunks
        XCTAssertEqual(log.append(b, seq: 1, stream(2, 0..<100)), .full)  // needs 2, 1 free
        XCTAssertFalse(AppendResult.full.mayForward)
        XCTAssertEqual(log.append(b, seq: 1, stream(2, 0..<64)), .logged(64))  // exactly the last chunk
        XCTAssertEqual(log.append(b, seq: 65, stream(2, 64..<65)), .full)
        XCTAssertEqual(log.append(a, seq: 193, stream(1, 192..<193)), .full)
        XCTAssertEqual(log.append(a, seq: 100, stream(1, 99..<150)), .duplicate)  // retransmissions still pass
        XCTAssertNil(log.open(key: key(3), clientISN: 0, options: options))  // below the reserve
        var usage = log.usage
        XCTAssertEqual(usage.chunksUsed, 4)
        XCTAssertEqual(usage.counters.fullDrops, 3)
        XCTAssertEqual(usage.counters.fullRejections, 1)
        XCTAssertEqual(log.clientBytes(b), stream(2, 0..<64))  // nothing of the refused segments

        log.close(a)
        XCTAssertEqual(log.append(b, seq: 65, stream(2, 64..<100)), .logged(36))  // the retransmission
        XCTAssertNotNil(log.open(key: key(3), clientISN: 0, options: options))
        usage = log.usage
        XCTAssertEqual(usage.chunksUsed, 2)
        XCTAssertEqual(log.clientBytes(b), stream(2, 0..<100))
    }

    func testSYNRetransmissionAndTupleReuse() throws {
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 4, chunkSize: 64)
        let first = try XCTUnwrap(log.open(key: key(1), clientISN: 77, options: options))
        XCTAssertEqual(log.append(first, seq: 78, [1, 2]), .logged(2))
        XCTAssertEqual(log.open(key: key(1), clientISN: 77, options: options), first)  // retransmitted SYN
        XCTAssertEqual(log.usage.counters.connectionsOpened, 1)
        let second = try XCTUnwrap(log.open(key: key(1), clientISN: 9000, options: options))  // new ISN
        XCTAssertNotEqual(second.serial, first.serial)
        XCTAssertEqual(log.records().map(\.clientISN), [9000])
        XCTAssertEqual(log.clientBytes(second), [])
        XCTAssertEqual(log.usage.chunksUsed, 0)
    }

    /// A status thread reads while the relay thread writes: every snapshot is a committed state
    /// (a prefix of the stream, never torn).
    func testReadersSeeCommittedStatesWhileWriting() throws {
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 64, chunkSize: 64)
        let slot = try XCTUnwrap(log.open(key: key(1), clientISN: 0, options: options))
        let data = stream(5, 0..<4000)
        let done = DispatchSemaphore(value: 0)
        let writer = Thread {
            var offset = 0
            while offset < data.count {
                let end = min(data.count, offset + 13)
                _ = log.append(slot, seq: UInt32(1 + offset), Array(data[offset..<end]))
                log.noteTimestamps(slot, fromClient: true, tsval: UInt32(offset), tsecr: 0)
                offset = end
            }
            done.signal()
        }
        writer.start()
        var reads = 0
        var finished = false
        while !finished {
            finished = done.wait(timeout: .now()) == .success
            let bytes = log.clientBytes(slot)
            XCTAssertEqual(bytes, Array(data[0..<bytes.count]))
            if let record = log.records().first {
                XCTAssertLessThanOrEqual(Int(record.clientBytesLogged), data.count)
            }
            reads += 1
        }
        XCTAssertEqual(log.clientBytes(slot), data)
        XCTAssertGreaterThan(reads, 0)
    }

    func testLookupFollowsOpenAndClose() throws {
        let log = try ConnectionLog.create(path: path, slots: 64, chunks: 4, chunkSize: 64)
        var open: [FlowKey: Slot] = [:]
        for n in 0..<64 { open[key(n)] = log.open(key: key(n), clientISN: UInt32(n), options: options) }
        for n in stride(from: 0, to: 64, by: 3) {
            log.close(open[key(n)]!)
            open[key(n)] = nil
        }
        for n in 0..<70 { XCTAssertEqual(log.lookup(key(n)), open[key(n)], "key \(n)") }
    }
}
