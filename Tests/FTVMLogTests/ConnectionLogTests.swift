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
    /// A connection the guest opened is marked so (its client is the end server), and the mark
    /// survives a restarted daemon's attach; a client connection has none.
    func testGuestInitiatedMarkSurvivesAttach() throws {
        let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
        let outgoing = try XCTUnwrap(
            log.open(key: key(1, port: 40000), clientISN: 77, options: options, guestInitiated: true))
        let incoming = try XCTUnwrap(log.open(key: key(2), clientISN: 88, options: options))
        XCTAssertEqual(log.current(outgoing).guestInitiated, true)
        XCTAssertEqual(log.current(incoming).guestInitiated, false)
        let attached = try ConnectionLog.attach(path: path)
        XCTAssertEqual(try XCTUnwrap(attached.record(outgoing)).guestInitiated, true)
        XCTAssertEqual(try XCTUnwrap(attached.record(incoming)).guestInitiated, false)
    }

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
        XCTAssertNil(log.open(key: key(3), clientISN: 3, options: options))  // no slot: passes unlogged
        XCTAssertEqual(log.usage.counters.admittedUnlogged, 1)
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

    /// A full log costs protection, never service: the connection whose bytes do not fit becomes
    /// unprotected (its chunks freed, its segments forwarded unlogged), and a connection admitted
    /// below the reserve is unprotected from its SYN on. Nothing is delayed or refused.
    func testFullLogUnprotectsInsteadOfDelaying() throws {
        let log = try ConnectionLog.create(path: path, slots: 4, chunks: 4, chunkSize: 64)
        log.admissionReserve = 1
        let a = try XCTUnwrap(log.open(key: key(1), clientISN: 0, options: options))
        let b = try XCTUnwrap(log.open(key: key(2), clientISN: 0, options: options))
        XCTAssertEqual(log.append(a, seq: 1, stream(1, 0..<192)), .logged(192))  // 3 chunks
        XCTAssertEqual(log.append(b, seq: 1, stream(2, 0..<64)), .logged(64))  // exactly the last chunk
        XCTAssertEqual(log.append(b, seq: 65, stream(2, 64..<65)), .unprotected)  // no chunk left
        XCTAssertTrue(AppendResult.unprotected.mayForward)
        XCTAssertEqual(log.current(b).protection, .logFull)
        XCTAssertEqual(log.clientBytes(b), [])  // its history is gone …
        XCTAssertEqual(log.usage.chunksUsed, 3)  // … and its chunk with it
        XCTAssertEqual(log.append(b, seq: 1, stream(2, 0..<10)), .unprotected)  // from now on, always
        XCTAssertEqual(log.appendClientFIN(b, seq: 66), .unprotected)
        XCTAssertEqual(log.current(b).state, .closing)
        // Below the reserve a new connection is admitted unprotected.
        XCTAssertEqual(log.append(a, seq: 193, stream(1, 192..<256)), .logged(64))  // the last free chunk
        let c = try XCTUnwrap(log.open(key: key(3), clientISN: 0, options: options))
        XCTAssertEqual(log.current(c).protection, .logFull)
        XCTAssertEqual(log.append(c, seq: 1, [1, 2, 3]), .unprotected)
        var usage = log.usage
        XCTAssertEqual(usage.chunksUsed, 4)
        XCTAssertEqual(usage.bytesHeld, 256)
        XCTAssertEqual(usage.counters.unprotectedLogFull, 2)
        XCTAssertEqual(usage.unprotectedNow, 2)
        log.close(b)
        log.close(c)
        usage = log.usage
        XCTAssertEqual(usage.unprotectedNow, 0)
        XCTAssertEqual(usage.counters.unprotectedLogFull, 2)
        XCTAssertEqual(log.clientBytes(a), stream(1, 0..<256))
    }

    /// One connection may hold at most `connectionBudget` bytes from its replay start on.
    func testConnectionBudget() throws {
        let log = try ConnectionLog.create(path: path, slots: 4, chunks: 16, chunkSize: 64)
        log.connectionBudget = 200
        let a = try XCTUnwrap(log.open(key: key(1), clientISN: 0, options: options))
        log.setServerHandshake(a, serverISN: 1000, options: options)
        XCTAssertEqual(log.append(a, seq: 1, stream(1, 0..<150)), .logged(150))
        XCTAssertEqual(log.append(a, seq: 151, stream(1, 150..<200)), .logged(50))  // exactly the budget
        // A trim makes room: the budget counts what the connection holds, not its age.
        log.serverSent(a, endSeq: 1011, stream(9, 0..<10))
        log.noteClientAck(a, ack: 1011)
        XCTAssertTrue(log.trim(a, to: ReplayStart(clientOffset: 130, serverOffset: 10, serverCRC: 0)))
        XCTAssertEqual(log.append(a, seq: 201, stream(1, 200..<330)), .logged(130))  // holds 200 again
        XCTAssertEqual(log.append(a, seq: 331, stream(1, 330..<331)), .unprotected)
        XCTAssertEqual(log.current(a).protection, .overBudget)
        XCTAssertEqual(log.usage.counters.unprotectedOverBudget, 1)
        XCTAssertEqual(log.usage.chunksUsed, 0)
        XCTAssertEqual(log.usage.bytesHeld, 0)
    }

    /// A trim frees the chunks wholly before the new replay start and keeps the rest readable; a
    /// replay's server stream checksum covers only what follows the start.
    func testTrimFreesWholeChunksAndKeepsTheRest() throws {
        let log = try ConnectionLog.create(path: path, slots: 2, chunks: 8, chunkSize: 64)
        let a = try XCTUnwrap(log.open(key: key(1), clientISN: 0xFFFF_FF00, options: options))
        log.setServerHandshake(a, serverISN: 0xFFFF_FFF0, options: options)
        XCTAssertEqual(log.append(a, seq: 0xFFFF_FF01, stream(1, 0..<300)), .logged(300))  // 5 chunks
        let reply = stream(2, 0..<100)
        log.serverSent(a, endSeq: 0xFFFF_FFF1 &+ 100, reply)
        log.noteClientAck(a, ack: 0xFFFF_FFF1 &+ 60)
        // Not past what the client acknowledged, nor behind the start, nor past what is logged.
        let crc60 = referenceCRC32C(Array(reply[0..<60]))
        XCTAssertFalse(log.trim(a, to: ReplayStart(clientOffset: 130, serverOffset: 61, serverCRC: 0)))
        XCTAssertFalse(log.trim(a, to: ReplayStart(clientOffset: 301, serverOffset: 60, serverCRC: crc60)))
        XCTAssertTrue(log.trim(a, to: ReplayStart(clientOffset: 130, serverOffset: 60, serverCRC: crc60)))
        XCTAssertFalse(log.trim(a, to: ReplayStart(clientOffset: 129, serverOffset: 60, serverCRC: crc60)))
        XCTAssertFalse(log.trim(a, to: ReplayStart(clientOffset: 130, serverOffset: 60, serverCRC: crc60)))  // no move
        var record = log.current(a)
        XCTAssertEqual(record.replayStart, ReplayStart(clientOffset: 130, serverOffset: 60, serverCRC: crc60))
        XCTAssertEqual(record.clientBytesHeld, 170)
        XCTAssertEqual(record.replayClientISN, 0xFFFF_FF00 &+ 130)
        XCTAssertEqual(
            record.replayedServerStream,
            StreamChecksum(crc: referenceCRC32C(Array(reply[60..<100])), byteCount: 40, endSequence: 0xFFFF_FFF1 &+ 100)
        )
        XCTAssertEqual(log.clientBytes(a), stream(1, 130..<300))
        XCTAssertEqual(log.usage.chunksUsed, 3)  // chunks 2, 3, 4 (bytes 128..<320)
        XCTAssertEqual(log.usage.bytesHeld, 170)
        XCTAssertEqual(log.usage.counters.trims, 1)
        XCTAssertEqual(log.usage.counters.bytesTrimmed, 130)
        var cursor = ClientByteCursor()
        var buffer = [UInt8](repeating: 0, count: 100)
        let read = buffer.withUnsafeMutableBytes { log.readClientBytes(a, from: 150, into: $0, cursor: &cursor) }
        XCTAssertEqual(read, 100)
        XCTAssertEqual(buffer, stream(1, 150..<250))
        XCTAssertEqual(
            buffer.withUnsafeMutableBytes { log.readClientBytes(a, from: 129, into: $0, cursor: &cursor) }, 0)

        // Trim everything: an idle keep-alive connection holds nothing but its last partial chunk.
        log.noteClientAck(a, ack: 0xFFFF_FFF1 &+ 100)
        XCTAssertTrue(
            log.trim(a, to: ReplayStart(clientOffset: 300, serverOffset: 100, serverCRC: referenceCRC32C(reply))))
        record = log.current(a)
        XCTAssertEqual(record.clientBytesHeld, 0)
        XCTAssertEqual(record.replayedServerStream.byteCount, 0)
        XCTAssertEqual(record.replayedServerStream.crc, 0)
        XCTAssertEqual(log.usage.chunksUsed, 1)  // bytes 256..<300 share the chunk byte 300 goes into
        XCTAssertEqual(log.clientBytes(a), [])
        XCTAssertEqual(log.append(a, seq: 0xFFFF_FF01 &+ 300, stream(1, 300..<400)), .logged(100))
        XCTAssertEqual(log.clientBytes(a), stream(1, 300..<400))
        XCTAssertEqual(log.usage.chunksUsed, 3)
        // A start inside the last chunk keeps just that chunk.
        log.serverSent(a, endSeq: 0xFFFF_FFF1 &+ 101, [7])
        log.noteClientAck(a, ack: 0xFFFF_FFF1 &+ 101)
        XCTAssertTrue(
            log.trim(a, to: ReplayStart(clientOffset: 384, serverOffset: 101, serverCRC: referenceCRC32C(reply + [7]))))
        XCTAssertEqual(log.clientBytes(a), stream(1, 384..<400))
        XCTAssertEqual(log.usage.chunksUsed, 1)
        // A chunk-aligned start at the end empties the chain; the next byte starts a fresh chunk.
        XCTAssertEqual(log.append(a, seq: 0xFFFF_FF01 &+ 400, stream(1, 400..<448)), .logged(48))
        XCTAssertTrue(
            log.trim(a, to: ReplayStart(clientOffset: 448, serverOffset: 101, serverCRC: referenceCRC32C(reply + [7]))))
        XCTAssertEqual(log.usage.chunksUsed, 0)
        XCTAssertEqual(log.current(a).clientBytesHeld, 0)
        XCTAssertEqual(log.append(a, seq: 0xFFFF_FF01 &+ 448, stream(1, 448..<450)), .logged(2))
        XCTAssertEqual(log.clientBytes(a), stream(1, 448..<450))
        XCTAssertEqual(log.usage.chunksUsed, 1)
        log.close(a)
        XCTAssertEqual(log.usage.chunksUsed, 0)
        XCTAssertEqual(log.usage.bytesHeld, 0)
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
