import FTVMWire
import SeededRandom
import XCTest

@testable import FTVMLog

/// Random operation sequences against the log and a plain in-memory model of what it should
/// hold; after every step (and after every re-attach) the two must agree exactly.
final class ModelTests: LogTestCase {
    private let slots = 6
    private let chunks = 16
    private let chunkSize = 64
    private let reserve = 2
    private let budget: UInt64 = 400
    private let keyPool = 9

    /// What the model knows about one connection. Offsets count bytes from ISN + 1.
    private struct Connection {
        var slot: Slot
        var key: FlowKey
        var streamID: UInt64
        var isn: UInt32
        var options: SYNOptions
        var logged = 0
        var clientFIN = false
        var server: (isn: UInt32, options: SYNOptions)?
        var sent = 0  // snd_max − (server ISN + 1), FIN included
        var covered = 0  // server payload bytes the stream checksum covers
        var coveredCRC: UInt32 = 0
        var acked = -1  // ack − (server ISN + 1); −1: only the ISN
        var serverFIN = false
        var clientTS: TCPTimestamps?
        var serverTS: TCPTimestamps?
        var httpFraming = false
        var maskEnd: Int?
        /// The replay start (client and server offsets, and the server stream's CRC there).
        var start = 0
        var serverStart = 0
        var serverStartCRC: UInt32 = 0
        var protection = Protection.protected
        /// An unprotected connection's FIN marks it closing without being logged.
        var closing = false

        var state: ConnectionState { clientFIN || serverFIN || closing ? .closing : .open }
        var chunks: Int { protection == .protected ? (logged + 63) / 64 - start / 64 : 0 }
        var held: Int { protection == .protected ? logged - start : 0 }
        var serverStreamID: UInt64 { streamID ^ 0xFFFF }

        var record: ConnectionRecord {
            let serverBase = server.map { $0.isn &+ 1 } ?? 0
            return ConnectionRecord(
                slot: slot, key: key, state: state, clientISN: isn, clientOptions: options, serverISN: server?.isn,
                serverOptions: server?.options, clientBytesLogged: UInt64(logged), clientFINLogged: clientFIN,
                nextClientSequence: isn &+ 1 &+ UInt32(logged) &+ (clientFIN ? 1 : 0),
                serverAckedByClient: server == nil ? 0 : serverBase &+ UInt32(bitPattern: Int32(acked)),
                serverSendMax: server == nil ? 0 : serverBase &+ UInt32(sent),
                serverFINSent: serverFIN, clientTimestamps: clientTS, serverTimestamps: serverTS,
                serverStream: StreamChecksum(
                    crc: coveredCRC, byteCount: UInt64(covered),
                    endSequence: server == nil ? 0 : serverBase &+ UInt32(covered)),
                rolledBack: false,
                replayStart: ReplayStart(
                    clientOffset: UInt64(start), serverOffset: UInt64(serverStart), serverCRC: serverStartCRC),
                protection: protection, masking: httpFraming ? .http(until: maskEnd.map { UInt64($0) }) : .none)
        }
    }

    private struct Model {
        var open: [FlowKey: Connection] = [:]
        var opened: UInt64 = 0
        var bytesLogged: UInt64 = 0
        var unlogged: UInt64 = 0
        var unprotectedFull: UInt64 = 0
        var unprotectedBudget: UInt64 = 0
        var trims: UInt64 = 0
        var bytesTrimmed: UInt64 = 0
        var attaches: UInt64 = 0
        var chunksUsed: Int { open.values.reduce(0) { $0 + $1.chunks } }
    }

    func testRandomOperationsMatchModel() throws {
        for seed: UInt64 in [1, 2, 3, 4, 5, 6] {
            try run(seed: seed, steps: 2500)
            unlink(path)
        }
    }

    private func run(seed: UInt64, steps: Int) throws {
        var rng = SplitMix64(seed: seed)
        var log = try ConnectionLog.create(path: path, slots: slots, chunks: chunks, chunkSize: chunkSize)
        log.admissionReserve = reserve
        log.connectionBudget = budget
        var model = Model()
        var nextStreamID: UInt64 = seed << 32
        var seen: Set<String> = []  // outcomes reached, so the mix is known to exercise each path

        func randomLive() -> Connection? {
            model.open.values.sorted { $0.slot.index < $1.slot.index }.randomElement(using: &rng)
        }

        for step in 0..<steps {
            let roll = Int.random(in: 0..<100, using: &rng)
            var what = ""
            switch roll {
            case 0..<14:  // a SYN
                let flow = key(Int.random(in: 0..<keyPool, using: &rng))
                let existing = model.open[flow]
                let isn: UInt32 =
                    if let existing, Bool.random(using: &rng) {
                        existing.isn  // retransmitted SYN
                    } else if Bool.random(using: &rng) {
                        UInt32.max - UInt32.random(in: 0..<300, using: &rng)  // wraps soon
                    } else {
                        UInt32.random(in: 0...UInt32.max, using: &rng)
                    }
                let options = SYNOptions(
                    maximumSegmentSize: Bool.random(using: &rng) ? UInt16.random(in: 536...9000, using: &rng) : nil,
                    windowScale: Bool.random(using: &rng) ? UInt8.random(in: 0...14, using: &rng) : nil,
                    sackPermitted: Bool.random(using: &rng), timestamps: Bool.random(using: &rng))
                let framing = Bool.random(using: &rng)
                what = "open \(flow) isn \(isn)"
                let slot = log.open(key: flow, clientISN: isn, options: options, httpFraming: framing)
                if let existing, existing.isn == isn {
                    XCTAssertEqual(slot, existing.slot, what)
                    break
                }
                if existing != nil { model.open[flow] = nil }  // the client reused the tuple
                if model.open.count == slots {
                    XCTAssertNil(slot, what)
                    seen.insert("unlogged")
                    model.unlogged += 1
                    break
                }
                guard let slot else { return XCTFail("\(what): refused (seed \(seed), step \(step))") }
                model.opened += 1
                XCTAssertEqual(slot.serial, model.opened, what)
                XCTAssertFalse(model.open.values.contains { $0.slot.index == slot.index }, what)
                nextStreamID += 1
                var connection = Connection(slot: slot, key: flow, streamID: nextStreamID, isn: isn, options: options)
                connection.httpFraming = framing
                if chunks - model.chunksUsed < reserve {
                    connection.protection = .logFull
                    model.unprotectedFull += 1
                    seen.insert("admitted unprotected")
                }
                model.open[flow] = connection

            case 14..<54:  // a client segment
                guard var connection = randomLive() else { break }
                let length = Int.random(in: 1...200, using: &rng)
                let start: Int
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: start = connection.logged  // in order
                case 1: start = max(0, connection.logged - Int.random(in: 1...100, using: &rng))  // overlap, or dup
                case 2: start = max(0, connection.logged - length - Int.random(in: 0...50, using: &rng))  // duplicate
                default: start = connection.logged + Int.random(in: 1...100, using: &rng)  // gap
                }
                let end = start + length
                let expected: AppendResult
                if connection.protection != .protected {
                    expected = .unprotected
                } else if start > connection.logged {
                    expected = .gap
                } else if end <= connection.logged {
                    expected = .duplicate
                } else if connection.clientFIN {
                    expected = .gap
                } else {
                    let newBytes = end - connection.logged
                    let room = connection.logged % chunkSize == 0 ? 0 : chunkSize - connection.logged % chunkSize
                    let needed = newBytes > room ? (newBytes - room + chunkSize - 1) / chunkSize : 0
                    if UInt64(connection.held + newBytes) > budget {
                        expected = .unprotected
                        connection.protection = .overBudget
                        model.unprotectedBudget += 1
                        seen.insert("over budget")
                    } else if needed > chunks - model.chunksUsed {
                        expected = .unprotected
                        connection.protection = .logFull
                        model.unprotectedFull += 1
                        seen.insert("log full")
                    } else {
                        expected = start == connection.logged ? .logged(newBytes) : .partial(newBytes)
                        connection.logged = end
                        model.bytesLogged += UInt64(newBytes)
                    }
                }
                what = "append \(connection.key) \(start)..<\(end) (logged \(connection.logged))"
                let result = log.append(
                    connection.slot, seq: connection.isn &+ 1 &+ UInt32(start), stream(connection.streamID, start..<end)
                )
                XCTAssertEqual(result, expected, what)
                seen.insert("\(expected)".prefix { $0 != "(" }.description)
                if expected.mayForward, connection.isn > connection.isn &+ 1 &+ UInt32(truncatingIfNeeded: end) {
                    seen.insert("wrapped")
                }
                model.open[connection.key] = connection

            case 54..<58:  // the client's FIN
                guard var connection = randomLive() else { break }
                let result = log.appendClientFIN(connection.slot, seq: connection.isn &+ 1 &+ UInt32(connection.logged))
                if connection.protection == .protected {
                    XCTAssertEqual(result, connection.clientFIN ? .duplicate : .logged(0))
                    connection.clientFIN = true
                } else {
                    XCTAssertEqual(result, .unprotected)
                    connection.closing = true
                }
                model.open[connection.key] = connection

            case 58..<64:  // the primary's SYN/ACK
                guard var connection = randomLive(), connection.server == nil else { break }
                let isn = UInt32.random(in: 0...UInt32.max, using: &rng)
                let options = SYNOptions(maximumSegmentSize: 1460, sackPermitted: Bool.random(using: &rng))
                log.setServerHandshake(connection.slot, serverISN: isn, options: options)
                connection.server = (isn, options)
                model.open[connection.key] = connection

            case 64..<76:  // a server segment
                guard var connection = randomLive(), let server = connection.server else { break }
                let payloadEnd = connection.sent - (connection.serverFIN ? 1 : 0)
                let start = max(0, connection.covered + Int.random(in: -30...20, using: &rng))
                let length = Int.random(in: 0...100, using: &rng)
                let fin = Int.random(in: 0..<20, using: &rng) == 0 && start + length >= payloadEnd
                if connection.serverFIN, start + length > payloadEnd { break }  // nothing after a FIN
                let payload = stream(connection.serverStreamID, start..<start + length)
                let end = start + length + (fin ? 1 : 0)
                log.serverSent(connection.slot, endSeq: server.isn &+ 1 &+ UInt32(end), payload, fin: fin)
                connection.sent = max(connection.sent, end)
                if connection.protection == .protected, start <= connection.covered, start + length > connection.covered
                {
                    let tail = stream(connection.serverStreamID, connection.covered..<start + length)
                    connection.coveredCRC = referenceCRC32C(tail, continuing: connection.coveredCRC)
                    connection.covered = start + length
                }
                if fin { connection.serverFIN = true }
                model.open[connection.key] = connection

            case 76..<84:  // a client ACK
                guard var connection = randomLive(), let server = connection.server else { break }
                let ack = Int.random(in: (connection.acked - 10)...(connection.sent + 10), using: &rng)
                log.noteClientAck(connection.slot, ack: server.isn &+ 1 &+ UInt32(bitPattern: Int32(ack)))
                if ack > connection.acked, ack <= connection.sent { connection.acked = ack }
                model.open[connection.key] = connection

            case 84..<89:  // timestamps
                guard var connection = randomLive() else { break }
                let fromClient = Bool.random(using: &rng)
                let previous = fromClient ? connection.clientTS : connection.serverTS
                let base = previous?.value ?? UInt32.max - 100
                let tsval = base &+ UInt32(bitPattern: Int32.random(in: -5...40, using: &rng))
                let tsecr = UInt32.random(in: 0...UInt32.max, using: &rng)
                log.noteTimestamps(connection.slot, fromClient: fromClient, tsval: tsval, tsecr: tsecr)
                if previous == nil || Int32(bitPattern: tsval &- previous!.value) >= 0 {
                    let pair = TCPTimestamps(value: tsval, echoReply: tsecr)
                    if fromClient { connection.clientTS = pair } else { connection.serverTS = pair }
                }
                model.open[connection.key] = connection

            case 89..<93:  // a trim: sometimes valid, sometimes not
                guard var connection = randomLive() else { break }
                let clientOffset = max(
                    0, connection.start + Int.random(in: -5...(connection.logged - connection.start + 5), using: &rng))
                let serverOffset = max(
                    0,
                    connection.serverStart
                        + Int.random(in: -5...(connection.covered - connection.serverStart + 5), using: &rng))
                let crc = referenceCRC32C(stream(connection.serverStreamID, 0..<serverOffset))
                let valid =
                    connection.protection == .protected && connection.server != nil
                    && (connection.start...connection.logged).contains(clientOffset)
                    && (connection.serverStart...connection.covered).contains(serverOffset)
                    && serverOffset <= connection.acked
                    && (clientOffset > connection.start || serverOffset > connection.serverStart)
                what = "trim \(connection.key) to \(clientOffset), \(serverOffset)"
                let trimmed = log.trim(
                    connection.slot,
                    to: ReplayStart(
                        clientOffset: UInt64(clientOffset), serverOffset: UInt64(serverOffset), serverCRC: crc))
                XCTAssertEqual(trimmed, valid, what)
                if valid {
                    seen.insert("trimmed")
                    model.trims += 1
                    model.bytesTrimmed += UInt64(clientOffset - connection.start)
                    connection.start = clientOffset
                    connection.serverStart = serverOffset
                    connection.serverStartCRC = crc
                }
                model.open[connection.key] = connection

            case 93..<94:  // the relay stops following a connection's framing
                guard var connection = randomLive() else { break }
                log.stopFraming(connection.slot, atServerOffset: UInt64(connection.covered))
                if connection.httpFraming, connection.maskEnd == nil { connection.maskEnd = connection.covered }
                model.open[connection.key] = connection

            case 94..<97:  // a close
                guard let connection = randomLive() else { break }
                log.close(connection.slot)
                model.open[connection.key] = nil

            default:  // the daemon restarts
                what = "re-attach"
                log = try ConnectionLog.attach(path: path)
                log.admissionReserve = reserve
                log.connectionBudget = budget
                model.attaches += 1
                if !model.open.isEmpty { seen.insert("re-attached") }
            }
            try check(log, model, "seed \(seed) step \(step): \(what)")
        }
        XCTAssertEqual(
            seen,
            [
                "logged", "partial", "duplicate", "gap", "unprotected", "unlogged", "admitted unprotected",
                "over budget", "log full", "trimmed", "wrapped", "re-attached",
            ], "seed \(seed)")
    }

    private func check(_ log: ConnectionLog, _ model: Model, _ context: String) throws {
        let expected = model.open.values.sorted { $0.slot.index < $1.slot.index }
        let records = log.records()
        XCTAssertEqual(records, expected.map(\.record), context)
        if records != expected.map(\.record) { throw Stop() }
        for connection in expected {
            XCTAssertEqual(
                log.clientBytes(connection.slot),
                connection.protection == .protected
                    ? stream(connection.streamID, connection.start..<connection.logged) : [],
                context)
        }
        for n in 0..<keyPool { XCTAssertEqual(log.lookup(key(n)), model.open[key(n)]?.slot, context) }
        let usage = log.usage
        XCTAssertEqual(usage.slotsUsed, model.open.count, context)
        XCTAssertEqual(usage.chunksUsed, model.chunksUsed, context)
        XCTAssertEqual(usage.bytesHeld, UInt64(expected.reduce(0) { $0 + $1.held }), context)
        XCTAssertEqual(usage.unprotectedNow, expected.filter { $0.protection != .protected }.count, context)
        XCTAssertEqual(
            usage.counters,
            LogCounters(
                connectionsOpened: model.opened, bytesLogged: model.bytesLogged, admittedUnlogged: model.unlogged,
                unprotectedLogFull: model.unprotectedFull, unprotectedOverBudget: model.unprotectedBudget,
                trims: model.trims, bytesTrimmed: model.bytesTrimmed, reclaimed: 0, corruptRecords: 0,
                rolledBackRecords: 0, attaches: model.attaches), context)
    }

    private struct Stop: Error {}
}
