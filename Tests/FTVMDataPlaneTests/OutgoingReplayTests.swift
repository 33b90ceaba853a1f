import FTVMLog
import FTVMSystem
import FTVMWire
import Foundation
import SeededRandom
import XCTest

@testable import FTVMDataPlane

/// Relay servers played by hand (docs/relay-servers.md): the guest opens a connection to an end
/// server, a failover comes, and the new guest opens its own connection to the same end server,
/// which the relay maps onto the logged one. Every frame toward the end server and the guest is
/// recorded and checked.
final class OutgoingReplayTests: HandPlayedTestCase {
    override class var slots: Int { 32 }  // (12 waiting and 12 new connections at once)

    private let endServer = IPv4Address(10, 77, 0, 1)
    private let guest = IPv4Address(10, 77, 0, 2)
    private let endServerMAC = MACAddress(2, 0, 0, 0, 0, 1)
    private let guestMAC = MACAddress(0x52, 0x54, 0, 0x77, 0, 2)
    private let endPort: UInt16 = 9000
    /// The old guest's local port, and the one the new guest picks.
    private let oldPort: UInt16 = 41000
    private let newPort: UInt16 = 52000
    private let guestISN: UInt32 = 0xFFFF_FF80  // wraps while the request goes out
    private let endISN: UInt32 = 0x2000_0000
    private let newISN: UInt32 = 0x7000_0000
    /// The end server's ISN for the new guest's connection.
    private let newEndISN: UInt32 = 0x6600_0000
    /// A client of the guest's proxy, and the ISNs of its connection.
    private let clientPort: UInt16 = 50000
    private let clientISN: UInt32 = 3000
    private let serviceISN: UInt32 = 8000
    private let clientRequest = Array("GET /proxy/a HTTP/1.1\r\nHost: p\r\n\r\n".utf8)
    private let start: UInt64 = 5_000_000_000

    private var guestClock: UInt32 = 500_000
    private var endClock: UInt32 = 9000
    /// The end server's TSval offset per connection (the guest's local port): Linux picks a
    /// random one for each (`playOlds` sets them).
    private var endClockOffsets: [UInt16: UInt32] = [:]

    private let request = Array("GET /bytes/5000?seed=3 HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
    /// What the end server answered before the failure (all logged; the guest had 2500 of it).
    private let answer = (0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 5) }

    private var requestEnd: UInt32 { guestISN &+ 1 &+ UInt32(request.count) }

    // MARK: Logging

    /// What the log says a new guest connection sent: its request line, printable and short.
    func testTheLogNamesARequestByItsFirstLine() {
        func line(_ text: [UInt8]) -> String { text.withUnsafeBytes { Splicer.firstLine($0) } }
        XCTAssertEqual(
            line(Array("GET /bytes/5?seed=1 HTTP/1.1\r\nHost: b\r\n\r\n".utf8)), "GET /bytes/5?seed=1 HTTP/1.1")
        XCTAssertEqual(line([0x16, 0x03, 0x01, 0x41, 0x0A, 0x42]), "...A")
        XCTAssertEqual(line(Array(repeating: UInt8(ascii: "x"), count: 300)).count, 100)
        XCTAssertEqual(line([]), "")
    }

    func testTheGuestsConnectionIsLoggedWithTheRolesMirrored() throws {
        let slot = try playOldGuest()
        let record = log.current(slot)
        XCTAssertTrue(record.guestInitiated)
        XCTAssertEqual(
            record.key,
            FlowKey(
                clientAddress: endServer.rawValue, clientPort: 9000, serverAddress: guest.rawValue,
                serverPort: oldPort))
        XCTAssertEqual(record.clientISN, endISN, "the end server's ISN")
        XCTAssertEqual(record.serverISN, guestISN, "the guest's ISN")
        XCTAssertEqual(
            record.clientOptions,
            SYNOptions(maximumSegmentSize: 1400, windowScale: 6, sackPermitted: true, timestamps: true))
        XCTAssertEqual(
            record.serverOptions,
            SYNOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true, timestamps: true))
        XCTAssertEqual(log.clientBytes(slot), answer, "every end-server byte, logged before the guest saw it")
        XCTAssertEqual(record.serverStream.byteCount, UInt64(request.count))
        XCTAssertEqual(record.serverStream.crc, CRC32C.checksum(request))
        XCTAssertEqual(record.serverAckedByClient, requestEnd, "the end server acknowledged the request")
        XCTAssertEqual(wrapper.outgoing.counters.logged, 1)
    }

    /// The new guest resets a connection it had opened again before it was spliced (nginx
    /// drops its upstream connection when its own client goes, and asks again on another): the
    /// record waits again, nothing reaches the end server, and the next connection with the same
    /// request is recognised as that one too. (Before, the record was reset and the request
    /// went to the end server a second time.)
    func testAReopenedConnectionTheNewGuestResetsWaitsForTheNextOne() throws {
        let slot = try playOldGuest()
        replayTheEndServerConnections()
        try openNew(answering: endOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: request), .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
        _ = sink.takeAll()
        XCTAssertEqual(
            try deliverFrame(
                fromGuest: true, seq: newISN &+ 1 &+ UInt32(request.count), ack: 0, flags: .rst, port: newPort
            ).verdict, .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen, "it waits again")
        XCTAssertEqual(sink.clients.count, 0, "the end server sees nothing")
        XCTAssertEqual(wrapper.splicer.latestReport.reset, 0)

        let again: UInt16 = newPort + 7
        let againISN: UInt32 = 0x7100_0000
        try openNew(port: again, isn: againISN, endISN: newEndISN &+ 0x10_0000, answering: endOptions)
        XCTAssertEqual(
            try deliverFrame(
                fromGuest: true, seq: againISN &+ 1, ack: newEndISN &+ 0x10_0001, flags: [.ack, .psh],
                payload: request, port: again
            ).verdict, .drop, "the same request on another connection: that record again")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
        XCTAssertEqual(
            try sink.takeClients().map(\.flags), [[.rst, .ack]], "the new one is reset toward the end server")
    }

    func testAnEndServerByteThatCannotBeLoggedInOrderNeverReachesTheGuest() throws {
        _ = try playOldGuest()
        let gap = try deliver(
            fromGuest: false, seq: endISN &+ 1 &+ UInt32(answer.count) &+ 100, ack: requestEnd, flags: [.ack, .psh],
            payload: [1, 2, 3])
        XCTAssertEqual(gap, .drop)
    }

    // MARK: Replay

    func testTheNewGuestsConnectionIsMatchedCaughtUpAndSpliced() throws {
        let slot = try playOldGuest()
        replayTheEndServerConnections()
        XCTAssertEqual(sink.takeAll(), 0, "nothing is sent until the new guest opens its connection")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)

        // The end server retransmits meanwhile: logged, never forwarded (the new guest would RST it).
        XCTAssertEqual(
            try deliver(
                fromGuest: false, seq: endISN &+ 1, ack: requestEnd, flags: [.ack, .psh],
                payload: Array(answer[..<1000])),
            .drop)

        // The new guest opens its own connection, from another port: a real one (a SYN cannot
        // tell which request follows).
        try openNew(answering: endOptions)
        XCTAssertEqual(sink.takeAll(), 0)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)

        // Its first bytes are the logged request: it is that connection. The new one is reset
        // toward the end server, which saw a handshake and nothing else.
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: request), .drop)
        let reset = try sink.takeClients()
        XCTAssertEqual(reset.map(\.flags), [[.rst, .ack]])
        XCTAssertEqual(reset.first?.tuple.sourcePort, newPort)
        XCTAssertEqual(reset.first?.seq, newISN &+ 1)
        XCTAssertEqual(reset.first?.checksumValid, true)
        XCTAssertNil(log.lookup(newKey), "the new connection's record is gone")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)

        // The regenerated request was checked, dropped and acknowledged for the end server; the
        // logged end-server bytes are injected in the sequence space the real SYN/ACK set.
        var injected: [UInt8] = []
        var acked: UInt32 = 0
        for _ in 0..<10 where wrapper.splicer.phase(of: slot) == .catchingUp {
            for segment in try sink.takeGuest() {
                XCTAssertEqual(segment.tuple.destinationPort, newPort)
                XCTAssertTrue(segment.checksumValid)
                acked = max(acked, segment.ack &- newISN)
                if !segment.payload.isEmpty {
                    XCTAssertEqual(segment.seq, newEndISN &+ 1 &+ UInt32(injected.count))
                    injected += segment.payload
                }
            }
            XCTAssertEqual(
                try newGuest(seq: newISN &+ 1 &+ UInt32(request.count), ack: newEndISN &+ 1 &+ UInt32(injected.count)),
                .drop)
        }
        XCTAssertEqual(injected, answer, "the logged end-server bytes, injected")
        XCTAssertEqual(acked, 1 &+ UInt32(request.count), "the regenerated request is acknowledged")
        XCTAssertEqual(sink.clients.count, 0, "the end server sees nothing of the regenerated request")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced, "spliced once the guest holds every logged byte")

        // Spliced: the guest's segments reach the end server as the old connection's…
        var out = try deliverFrame(
            fromGuest: true, seq: newISN &+ 1 &+ UInt32(request.count), ack: newEndISN &+ 1 &+ UInt32(answer.count),
            flags: [.ack, .psh], payload: Array("GET /next HTTP/1.1\r\n\r\n".utf8), port: newPort)
        XCTAssertEqual(out.verdict, .forward)
        XCTAssertEqual(out.segment.tuple.sourcePort, oldPort)
        XCTAssertEqual(out.segment.seq, requestEnd)
        XCTAssertEqual(out.segment.ack, endISN &+ 1 &+ UInt32(answer.count))
        XCTAssertTrue(out.segment.checksumValid)
        // … and the end server's reach the new guest's connection.
        out = try deliverFrame(
            fromGuest: false, seq: endISN &+ 1 &+ UInt32(answer.count), ack: requestEnd &+ 22, flags: [.ack, .psh],
            payload: [9, 9, 9], port: oldPort)
        XCTAssertEqual(out.verdict, .forward)
        XCTAssertEqual(out.segment.tuple.destinationPort, newPort)
        XCTAssertEqual(out.segment.seq, newEndISN &+ 1 &+ UInt32(answer.count))
        XCTAssertEqual(out.segment.ack, newISN &+ 1 &+ UInt32(request.count) &+ 22)
        XCTAssertTrue(out.segment.checksumValid)
        XCTAssertEqual(log.clientBytes(slot), answer + [9, 9, 9], "still logged before the guest sees it")
    }

    /// The end server told the new guest another window scale than the old one (its receive
    /// buffer sysctl changed in between, as the integration tests' clients do): the connection
    /// is still the logged one, and the end server's windows are rescaled for the guest, also
    /// after a daemon restart.
    func testAnotherWindowScaleFromTheEndServerIsRescaledForTheGuest() throws {
        var told = endOptions  // (the logged end server's scale: 6)
        told.windowScale = 8
        _ = try spliceReopened(answering: told)
        for restarted in [false, true] {
            if restarted { makeWrapper() }
            let out = try deliverFrame(
                fromGuest: false, seq: endISN &+ 1 &+ UInt32(answer.count), ack: requestEnd, flags: .ack, port: oldPort)
            XCTAssertEqual(out.verdict, .forward)
            XCTAssertEqual(out.segment.tuple.destinationPort, newPort)
            XCTAssertEqual(Int(out.segment.window), (2000 << 6) >> 8, "restarted: \(restarted)")
            XCTAssertTrue(out.segment.checksumValid)
        }
    }

    /// The new guest carries the old guest's connection on from its own port, and the end server
    /// still knows it by the old one: when the new guest opens another connection from that very
    /// port, the SYN would land on the live connection (the end server answers it with an ACK of
    /// that one, and the new connection's SYNs go unanswered: nginx gave up with a `504` after 60
    /// s). It gets a free port toward the end server instead, translated both ways, also after a
    /// daemon restart, while the carried-on connection keeps its own.
    func testANewConnectionFromTheOldPortOfOneOpenedAgainGetsAnotherPort() throws {
        let slot = try spliceReopened()

        let otherISN: UInt32 = 0x1234_5678
        var out = try deliverFrame(fromGuest: true, seq: otherISN, ack: 0, flags: .syn, options: synOptions)
        XCTAssertEqual(out.verdict, .forward)
        let renamed = out.segment.tuple.sourcePort
        XCTAssertTrue(Splicer.renamedPorts.contains(renamed), "another port toward the end server: \(renamed)")
        XCTAssertTrue(out.segment.checksumValid)
        out = try deliverFrame(fromGuest: true, seq: otherISN, ack: 0, flags: .syn, options: synOptions)
        XCTAssertEqual(out.segment.tuple.sourcePort, renamed, "a retransmitted SYN gets the same")
        let otherEndISN: UInt32 = 0x4444_0000
        out = try deliverFrame(
            fromGuest: false, seq: otherEndISN, ack: otherISN &+ 1, flags: [.syn, .ack], options: endOptions,
            port: renamed)
        XCTAssertEqual(out.verdict, .forward)
        XCTAssertEqual(out.segment.tuple.destinationPort, oldPort, "the SYN/ACK reaches the guest's port")
        XCTAssertTrue(out.segment.checksumValid)
        var renamedKey = loggedKey
        renamedKey.serverPort = renamed
        let fresh = try XCTUnwrap(log.lookup(renamedKey), "logged under the port the end server knows")
        XCTAssertNotEqual(fresh, slot)

        let next = Array("GET /next HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        for restarted in [false, true] {
            if restarted { makeWrapper() }
            out = try deliverFrame(
                fromGuest: true, seq: otherISN &+ 1, ack: otherEndISN &+ 1, flags: [.ack, .psh], payload: next)
            XCTAssertEqual(out.verdict, .forward)
            XCTAssertEqual(out.segment.tuple.sourcePort, renamed, "restarted: \(restarted)")
            XCTAssertTrue(out.segment.checksumValid)
            out = try deliverFrame(
                fromGuest: false, seq: otherEndISN &+ 1, ack: otherISN &+ 1 &+ UInt32(next.count), flags: .ack,
                port: renamed)
            XCTAssertEqual(out.segment.tuple.destinationPort, oldPort, "restarted: \(restarted)")
            // The connection carried on still reaches the new guest's own port.
            out = try deliverFrame(
                fromGuest: false, seq: endISN &+ 1 &+ UInt32(answer.count), ack: requestEnd, flags: .ack, port: oldPort)
            XCTAssertEqual(out.verdict, .forward)
            XCTAssertEqual(out.segment.tuple.destinationPort, newPort, "restarted: \(restarted)")
        }
        XCTAssertEqual(log.current(fresh).serverStream.byteCount, UInt64(next.count))
    }

    /// The new guest's connection that carries a logged one on ended for the guest, and nginx
    /// opens the next from the same local port: a connection of its own, never the logged one's
    /// (whose end server would answer its request with a RST: a `502`).
    func testANewConnectionFromThePortThatServedOneOpenedAgainIsItsOwn() throws {
        let slot = try spliceReopened()

        let otherISN: UInt32 = 0x1234_5678
        let otherEndISN: UInt32 = 0x4444_0000
        try openNew(port: newPort, isn: otherISN, endISN: otherEndISN, answering: endOptions)
        let next = Array("GET /next HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        let out = try deliverFrame(
            fromGuest: true, seq: otherISN &+ 1, ack: otherEndISN &+ 1, flags: [.ack, .psh], payload: next,
            port: newPort)
        XCTAssertEqual(out.verdict, .forward)
        XCTAssertEqual(out.segment.tuple.sourcePort, newPort, "its own port, not the logged connection's")
        XCTAssertEqual(out.segment.seq, otherISN &+ 1)
        var key = loggedKey
        key.serverPort = newPort
        let fresh = try XCTUnwrap(log.lookup(key))
        XCTAssertEqual(log.current(fresh).serverStream.byteCount, UInt64(next.count))
        XCTAssertEqual(log.current(slot).serverStream.byteCount, UInt64(request.count), "the logged one is untouched")
    }

    /// nginx without upstream keep-alive: the end server answered in full and closed before the
    /// failure. The new guest's request is still that connection's: it gets the answer and the
    /// FIN, and the end server is not asked again.
    func testAConnectionItsEndServerClosedIsStillTheOneReSent() throws {
        let slot = try playOldGuest()
        XCTAssertEqual(
            try deliver(
                fromGuest: false, seq: endISN &+ 1 &+ UInt32(answer.count), ack: requestEnd, flags: [.fin, .ack]),
            .forward)
        _ = sink.takeAll()
        replayTheEndServerConnections()
        try openNew(answering: endOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: request), .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
        let toGuest = try sink.takeGuest()
        XCTAssertEqual(toGuest.filter { !$0.payload.isEmpty }.flatMap(\.payload), answer)
        let fin = try XCTUnwrap(toGuest.first { $0.flags.contains(.fin) }, "the end server's FIN follows")
        XCTAssertEqual(fin.seq, newEndISN &+ 1 &+ UInt32(answer.count))
        XCTAssertEqual(
            try newGuest(seq: newISN &+ 1 &+ UInt32(request.count), ack: newEndISN &+ 2 &+ UInt32(answer.count)),
            .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        XCTAssertEqual(try sink.takeClients().map(\.flags), [[.rst, .ack]], "only the new connection's reset")
    }

    /// A request that no waiting connection carried (nginx re-sends a keep-alive request that
    /// never reached the back end, or one whose record is gone) is a new connection: it reaches
    /// the end server, at once, and the waiting one stays waiting. Before, the SYN was answered
    /// for the waiting connection, whose catch-up waited for bytes that never came and was reset
    /// at the deadline; nginx answered its client 502.
    func testARequestNoWaitingConnectionCarriedPassesAsANewConnection() throws {
        let slot = try playOldGuest()
        replayTheEndServerConnections()
        let shorter = Array("GET /bytes/50?seed=3 HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        let longer = Array(request.dropLast(2)) + Array("X: 1\r\n\r\n".utf8)
        for (port, other) in [(newPort, shorter), (newPort + 1, longer)] {  // (the same start as the logged one)
            try openNew(port: port, answering: endOptions)
            let out = try deliverFrame(
                fromGuest: true, seq: newISN &+ 1, ack: newEndISN &+ 1, flags: [.ack, .psh], payload: other, port: port)
            XCTAssertEqual(out.verdict, .forward, "it goes to the end server as it is")
            XCTAssertEqual(out.segment.tuple.sourcePort, port)
            XCTAssertEqual(out.segment.seq, newISN &+ 1)
            var key = newKey
            key.serverPort = port
            XCTAssertEqual(log.current(try XCTUnwrap(log.lookup(key))).serverStream.byteCount, UInt64(other.count))
        }
        XCTAssertEqual(sink.takeAll(), 0, "nothing reset, nothing injected")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)
        XCTAssertEqual(wrapper.splicer.latestReport.reset, 0)
    }

    /// Two logged connections to one end server, both with a request in flight; the new guest's
    /// connection re-sends the newer one's request. It becomes that one (the older waits on), and
    /// the end server's sequence numbers and TSvals are shifted for the guest: it gets that
    /// one's answer, and the end server sees nothing sent twice.
    func testTheGuestsFirstBytesPickWhichLoggedConnectionItReSends() throws {
        let first = try playOldGuest()
        let (second, otherRequest, otherAnswer) = try playOtherOldConnection()
        let otherPort: UInt16 = 41001
        let otherEndISN: UInt32 = 0x5500_0000
        let otherRequestEnd: UInt32 = 0x0100_0000 &+ 1 &+ UInt32(otherRequest.count)
        replayTheEndServerConnections()
        endClockOffsets[newPort] = 0x4000_0000  // the new connection's clock: a quarter turn ahead
        try openNew(answering: endOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: otherRequest), .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: first), .awaitingReopen, "the older one waits on")
        XCTAssertEqual(wrapper.splicer.phase(of: second), .catchingUp)
        var injected: [UInt8] = []
        for segment in try sink.takeGuest() where !segment.payload.isEmpty {
            XCTAssertEqual(segment.seq, newEndISN &+ 1 &+ UInt32(injected.count), "in the guest's view")
            XCTAssertEqual(segment.tuple.destinationPort, newPort)
            injected += segment.payload
        }
        XCTAssertEqual(injected, otherAnswer, "the other connection's answer")
        XCTAssertEqual(try sink.takeClients().map(\.flags), [[.rst, .ack]], "only the new connection's reset")
        XCTAssertEqual(
            try newGuest(
                seq: newISN &+ 1 &+ UInt32(otherRequest.count), ack: newEndISN &+ 1 &+ UInt32(otherAnswer.count)),
            .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: second), .spliced)

        // Spliced: both directions translated, ports and the shifts. `received` end-server
        // bytes past the answer have reached the guest; one more goes each way. Returns the
        // TSval the guest saw on it.
        func checkTranslated(received: UInt32) throws -> UInt32 {
            let out = try deliverFrame(
                fromGuest: true, seq: newISN &+ 1 &+ UInt32(otherRequest.count),
                ack: newEndISN &+ 1 &+ UInt32(otherAnswer.count) &+ received, flags: .ack, port: newPort)
            XCTAssertEqual(out.verdict, .forward)
            XCTAssertEqual(out.segment.tuple.sourcePort, otherPort)
            XCTAssertEqual(out.segment.seq, otherRequestEnd)
            XCTAssertEqual(out.segment.ack, otherEndISN &+ 1 &+ UInt32(otherAnswer.count) &+ received)
            XCTAssertTrue(out.segment.checksumValid)
            let back = try deliverFrame(
                fromGuest: false, seq: otherEndISN &+ 1 &+ UInt32(otherAnswer.count) &+ received,
                ack: otherRequestEnd, flags: [.ack, .psh], payload: [7], port: otherPort)
            XCTAssertEqual(back.verdict, .forward)
            XCTAssertEqual(back.segment.tuple.destinationPort, newPort)
            XCTAssertEqual(back.segment.seq, newEndISN &+ 1 &+ UInt32(otherAnswer.count) &+ received)
            XCTAssertTrue(back.segment.checksumValid)
            return try XCTUnwrap(back.segment.options.timestamps).value
        }
        let backTSval = try checkTranslated(received: 0)
        // The other connection's TSval clock is a quarter turn behind the new one's: shifted
        // onto the clock the guest's SYN/ACK set.
        XCTAssertTrue(SequenceMath.isAfter(backTSval, endClock &+ 0x4000_0000 &- 10), "\(backTSval)")

        // `ftvm connections` names the guest's side and the port it serves the connection from.
        let status = ConnectionStatus(log.current(second), clientBytes: log.clientBytes(second))
        XCTAssertTrue(status.guestInitiated)
        XCTAssertEqual(status.servingPort, newPort)
        XCTAssertEqual(status.client, "10.77.0.1:9000", "the end server, in the record's mirrored roles")

        // A restarted daemon carries on from the log: the same ports and shifts both ways.
        makeWrapper()
        let againTSval = try checkTranslated(received: 1)
        XCTAssertTrue(SequenceMath.isAfter(againTSval, backTSval), "\(againTSval) after \(backTSval)")
    }

    /// Many logged connections and a new guest that re-sends their requests the way a busy relay
    /// server does: handshakes and first requests interleaved at random, each new connection
    /// re-sending another's request than its order suggests, each with its own TSval clock.
    /// Each, played as a receiver that takes only the next byte in its own sequence space (and
    /// drops a TSval older than the last it took), must get exactly its record's answer and
    /// splice; the end server sees one reset per new connection and nothing else.
    func testManyNewConnectionsFindTheirOwnInAnyOrder() throws {
        for seed in 1...20 {
            if seed > 1 {  // a fresh log and relay for each seed (XCTest made the first)
                tearDown()
                try setUpWithError()
            }
            var random = SplitMix64(seed: UInt64(seed))
            let olds = try playOlds(12)
            replayTheEndServerConnections()
            let order = olds.indices.shuffled(using: &random)  // new connection k re-sends olds[order[k]]
            struct New {
                var port: UInt16, isn: UInt32, endISN: UInt32, received: [UInt8] = [], sent = false
                var tsRecent: UInt32 = 0
            }
            var news = olds.indices.map { k in
                New(port: 52100 + UInt16(k), isn: 0x0A00_0000 &* UInt32(k + 1), endISN: 0x0D00_0000 &* UInt32(k + 3))
            }
            for new in news { endClockOffsets[new.port] = UInt32(truncatingIfNeeded: random.next()) }
            func collect() throws {
                for segment in try sink.takeGuest() {
                    let k = try XCTUnwrap(news.firstIndex { $0.port == segment.tuple.destinationPort })
                    let tsval = try XCTUnwrap(segment.options.timestamps).value
                    // PAWS (RFC 7323 §5): a TSval older than the last one taken drops the segment.
                    guard SequenceMath.isAtOrAfter(tsval, news[k].tsRecent) else { continue }
                    news[k].tsRecent = tsval
                    guard !segment.payload.isEmpty,
                        segment.seq == news[k].endISN &+ 1 &+ UInt32(news[k].received.count)
                    else { continue }
                    news[k].received += segment.payload
                }
            }
            func acknowledge(_ k: Int) throws {
                guard news[k].sent else { return }
                let old = olds[order[k]]
                _ = try deliverFrame(
                    fromGuest: true, seq: news[k].isn &+ 1 &+ UInt32(old.request.count),
                    ack: news[k].endISN &+ 1 &+ UInt32(news[k].received.count), flags: .ack, port: news[k].port)
                try collect()
            }
            var events = olds.indices.flatMap { k in [(k, false), (k, true)] }.shuffled(using: &random)
            // Each handshake before its connection's request.
            for k in olds.indices {
                let open = try XCTUnwrap(events.firstIndex { $0 == (k, false) })
                let send = try XCTUnwrap(events.firstIndex { $0 == (k, true) })
                if send < open { events.swapAt(open, send) }
            }
            for (k, isRequest) in events {
                if !isRequest {
                    try openNew(port: news[k].port, isn: news[k].isn, endISN: news[k].endISN, answering: synOptions)
                    // The guest took the SYN/ACK's TSval.
                    news[k].tsRecent = endClock &+ endClockOffsets[news[k].port, default: 0] &- 1
                    continue
                }
                _ = try deliverFrame(
                    fromGuest: true, seq: news[k].isn &+ 1, ack: news[k].endISN &+ 1, flags: [.ack, .psh],
                    payload: olds[order[k]].request, port: news[k].port)
                news[k].sent = true
                try collect()
                for other in olds.indices where other != k { try acknowledge(other) }
            }
            for _ in 0..<3 {
                for k in olds.indices { try acknowledge(k) }
            }
            for k in olds.indices {
                XCTAssertTrue(
                    news[k].received == olds[order[k]].answer,
                    "seed \(seed): connection \(k) got \(news[k].received.count) of \(olds[order[k]].answer.count) bytes"
                )
            }
            let toEndServer = try sink.takeClients()
            XCTAssertEqual(toEndServer.count, olds.count, "seed \(seed)")
            XCTAssertTrue(toEndServer.allSatisfy { $0.flags == [.rst, .ack] && $0.tuple.sourcePort >= 52100 })
            XCTAssertEqual(
                wrapper.splicer.latestReport.reset, 0, "seed \(seed): \(wrapper.splicer.latestReport.resets)")
            try assertSpliced(olds)
        }
    }

    /// The new guest picks, for its own connection, the very port a waiting one used: the end
    /// server would take its SYN for a segment of the old connection. The waiting one is reset
    /// toward the end server first, and the SYN opens a new connection.
    func testASYNFromAWaitingConnectionsPortResetsThatOneFirst() throws {
        let slot = try playOldGuest()
        replayTheEndServerConnections()
        XCTAssertEqual(try play(true, newISN, 0, .syn), .forward)
        let reset = try sink.takeClients()
        XCTAssertEqual(reset.map(\.flags), [[.rst, .ack]])
        XCTAssertEqual(reset.first?.tuple.sourcePort, oldPort)
        XCTAssertEqual(reset.first?.seq, requestEnd)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .idle)
        XCTAssertEqual(try play(false, newEndISN, newISN &+ 1, [.syn, .ack]), .forward)
        XCTAssertEqual(log.current(try XCTUnwrap(log.lookup(loggedKey))).clientISN, newEndISN, "a new record")
    }

    /// While an upgrade drains, the old guest may still open a connection (a proxy serving a
    /// pinned client): it is logged and pinned to that guest, so the end server's answers go
    /// there, and the new guest cannot speak for it.
    func testTheGuestAnUpgradeDrainsOpensAConnectionPinnedToIt() throws {
        XCTAssertEqual(wrapper.pinAll(), 0)
        XCTAssertEqual(try play(true, guestISN, 0, .syn, fromDrainingGuest: true), .forward)
        XCTAssertEqual(try play(false, endISN, guestISN &+ 1, [.syn, .ack]), .forwardToDrain)
        let slot = try XCTUnwrap(log.lookup(loggedKey))
        XCTAssertTrue(wrapper.isPinned(slot))
        XCTAssertEqual(wrapper.pinnedOpen(), 0, "the drain waits for clients' connections only")
        XCTAssertEqual(
            try play(true, guestISN &+ 1, endISN &+ 1, [.ack, .psh], request, fromDrainingGuest: true), .forward)
        XCTAssertEqual(
            try play(false, endISN &+ 1, requestEnd, [.ack, .psh], Array(answer[..<1000])), .forwardToDrain)
        XCTAssertEqual(log.clientBytes(slot), Array(answer[..<1000]), "logged before the draining guest sees it")
        XCTAssertEqual(
            try deliver(fromGuest: true, seq: guestISN &+ 1, ack: endISN &+ 1, flags: [.ack, .psh], payload: request),
            .drop, "the new guest does not speak for it")
    }

    /// Two logged POSTs of 6000 bytes each, both in flight: the new guest's first segment holds
    /// only the start of one, but its head (the first 1024 bytes, whose checksum the relay kept)
    /// says which: the connection moves there, regenerates the rest, gets that one's answer and
    /// splices.
    func testALargeRequestPicksItsConnectionByItsHead() throws {
        let olds = try playOlds(2, body: 6000)
        replayTheEndServerConnections()
        try openNew(answering: synOptions)
        let request = olds[1].request
        for offset in stride(from: 0, to: request.count, by: 1400) {
            let part = Array(request[offset..<min(offset + 1400, request.count)])
            XCTAssertEqual(
                try newGuest(seq: newISN &+ 1 &+ UInt32(offset), ack: newEndISN &+ 1, payload: part), .drop)
        }
        var injected: [UInt8] = []
        for segment in try sink.takeGuest() where !segment.payload.isEmpty {
            XCTAssertEqual(segment.seq, newEndISN &+ 1 &+ UInt32(injected.count))
            injected += segment.payload
        }
        XCTAssertEqual(injected, olds[1].answer, "the second one's answer")
        XCTAssertEqual(
            try newGuest(seq: newISN &+ 1 &+ UInt32(request.count), ack: newEndISN &+ 1 &+ UInt32(injected.count)),
            .drop)
        XCTAssertEqual(wrapper.splicer.latestReport.reset, 0, "\(wrapper.splicer.latestReport.resets)")
        XCTAssertEqual(wrapper.splicer.phase(of: try slot(of: olds[1])), .spliced)
        XCTAssertEqual(wrapper.splicer.phase(of: try slot(of: olds[0])), .awaitingReopen)
    }

    /// The same after a daemon restart: the relay's memory of the heads is gone, but the head
    /// each connection's replay begins with is in its record.
    func testARestartedRelayStillPicksALargeRequestsConnectionByItsHead() throws {
        let olds = try playOlds(2, body: 6000)
        for old in olds { XCTAssertNotNil(log.current(try slot(of: old)).replayHeadCRC, "in the record") }
        makeWrapper()
        replayTheEndServerConnections()
        try openNew(answering: synOptions)
        XCTAssertEqual(
            try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: Array(olds[1].request[..<1400])), .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: try slot(of: olds[1])), .catchingUp)
        XCTAssertEqual(wrapper.splicer.phase(of: try slot(of: olds[0])), .awaitingReopen)
    }

    /// A large request whose head is a logged one's but whose body is not: the catch-up finds
    /// the difference once it has the logged length, and resets both sides.
    func testALargeRequestThatDiffersPastItsHeadResetsBothSides() throws {
        let olds = try playOlds(1, body: 6000)
        replayTheEndServerConnections()
        try openNew(answering: synOptions)
        var other = olds[0].request
        other[other.count - 10] ^= 1
        for offset in stride(from: 0, to: other.count, by: 1400) {
            let part = Array(other[offset..<min(offset + 1400, other.count)])
            XCTAssertEqual(
                try newGuest(seq: newISN &+ 1 &+ UInt32(offset), ack: newEndISN &+ 1, payload: part), .drop)
        }
        let toEndServer = try sink.takeClients()
        XCTAssertEqual(
            toEndServer.map(\.flags), [[.rst, .ack], [.rst, .ack]], "the new connection's, then the old one's")
        XCTAssertEqual(toEndServer.last?.tuple.sourcePort, olds[0].port)
        XCTAssertEqual(toEndServer.last?.seq, olds[0].guestISN &+ 1 &+ UInt32(other.count))
        let toGuest = try sink.takeGuest()
        XCTAssertTrue(toGuest.contains { $0.flags.contains(.rst) })
        XCTAssertTrue(toGuest.allSatisfy { $0.tuple.destinationPort == newPort })
        XCTAssertTrue(toGuest.allSatisfy { $0.payload.isEmpty }, "no answer before the request matched")
        XCTAssertEqual(wrapper.splicer.latestReport.reset, 1)
        XCTAssertTrue(wrapper.splicer.latestReport.resets.first?.contains("regenerated output differs") == true)
    }

    /// A proxy that pools its back-end connections among clients (seen with the demo proxy under
    /// wrk): the logged connection still holds an earlier request (its answer not yet framed, so
    /// no boundary) and a second in flight; the new guest's proxy re-sends only the second. That
    /// is not what the logged connection carried from any place it can start: a new connection,
    /// and the earlier answer never reaches it as the answer to this one.
    func testARequestThatIsOnlyTheTailOfALoggedStreamIsANewConnection() throws {
        let slot = try playOldGuest()
        let second = Array("GET /bytes/5000?seed=4 HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        XCTAssertEqual(
            try deliver(fromGuest: true, seq: requestEnd, ack: endISN &+ 4001, flags: [.ack, .psh], payload: second),
            .forward)
        let secondEnd = requestEnd &+ UInt32(second.count)
        XCTAssertEqual(
            try deliver(fromGuest: false, seq: endISN &+ 4001, ack: secondEnd, flags: .ack), .forward)
        _ = sink.takeAll()
        XCTAssertEqual(log.current(slot).replayedServerStream.byteCount, UInt64(request.count + second.count))

        replayTheEndServerConnections()
        try openNew(answering: endOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: second), .forward)
        wrapper.splicer.tick(now: start + 300_000_000, sink: sink)
        XCTAssertEqual(sink.takeAll(), 0, "no logged answer goes to a request that is not its own")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)
    }

    /// A pooled back-end connection whose earlier exchange is complete (a boundary, held because a
    /// client exchange that may have caused it is still in flight) and a second request in flight:
    /// the new guest re-sends only the second. It is matched at the boundary: the connection is
    /// trimmed there, the second's answer alone is injected, and the end server sees nothing twice.
    func testAPooledConnectionIsMatchedAtTheBoundaryOfTheRequestReSent() throws {
        try checkPooledConnection(restarted: false)
    }

    /// The same after a daemon restart: the relay's memory of the boundaries is gone, but the
    /// latest is kept in the log beside the record.
    func testARestartedRelayStillMatchesAPooledConnectionAtItsLatestBoundary() throws {
        try checkPooledConnection(restarted: true)
    }

    private func checkPooledConnection(restarted: Bool) throws {
        try openClientExchange()
        let first = Array("GET /a HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        let firstAnswer = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".utf8)
        let second = Array("GET /b HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        let secondAnswer = Array("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye".utf8)
        XCTAssertEqual(try play(true, guestISN, 0, .syn), .forward)
        XCTAssertEqual(try play(false, endISN, guestISN &+ 1, [.syn, .ack]), .forward)
        var guestSeq = guestISN &+ 1
        var endSeq = endISN &+ 1
        for (request, answer) in [(first, firstAnswer), (second, secondAnswer)] {
            XCTAssertEqual(try play(true, guestSeq, endSeq, [.ack, .psh], request), .forward)
            guestSeq &+= UInt32(request.count)
            XCTAssertEqual(try play(false, endSeq, guestSeq, [.ack, .psh], answer), .forward)
            endSeq &+= UInt32(answer.count)
        }
        let slot = try XCTUnwrap(log.lookup(loggedKey))
        wrapper.sweep(now: start)
        XCTAssertEqual(log.current(slot).replayStart.serverOffset, 0, "held: a client exchange is in flight")

        if restarted { makeWrapper() }
        replayTheEndServerConnections()
        _ = sink.takeAll()
        try openNew(answering: synOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: second), .drop)
        XCTAssertEqual(log.current(slot).replayStart.serverOffset, UInt64(first.count), "trimmed to the boundary")
        var injected: [UInt8] = []
        for segment in try sink.takeGuest() where !segment.payload.isEmpty {
            XCTAssertEqual(segment.seq, newEndISN &+ 1 &+ UInt32(injected.count))
            injected += segment.payload
        }
        XCTAssertEqual(injected, secondAnswer, "the second request's answer, and only it")
        XCTAssertEqual(
            try newGuest(seq: newISN &+ 1 &+ UInt32(second.count), ack: newEndISN &+ 1 &+ UInt32(injected.count)),
            .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        XCTAssertEqual(try sink.takeClients().map(\.flags), [[.rst, .ack]], "the new connection's reset, nothing else")
        let next = try deliverFrame(
            fromGuest: true, seq: newISN &+ 1 &+ UInt32(second.count), ack: newEndISN &+ 1 &+ UInt32(injected.count),
            flags: [.ack, .psh], payload: first, port: newPort)
        XCTAssertEqual(next.verdict, .forward)
        XCTAssertEqual(next.segment.seq, guestSeq, "the guest's next request follows the logged stream")
        XCTAssertEqual(next.segment.ack, endSeq)
    }

    /// A pooled connection a restarted relay found idle between two exchanges: it follows the
    /// connection's framing again from there, so a request sent after the restart is a boundary
    /// too, and the new guest that re-sends only the request after it is matched there. (Left
    /// unfollowed, the restarted relay could match the connection only from its replay start,
    /// and the re-sent request reached the end server as a new one: seen in a campaign as
    /// requests through nginx's pooled upstream asked twice after each daemon restart.)
    func testARestartedRelayFollowsAnIdlePooledConnectionsLaterExchanges() throws {
        try checkRestartedRelayFollowsThePooledConnection(insideTheSecondExchange: false)
    }

    /// The same connection found inside its second exchange, its request sent and part of the
    /// answer in: the log noted the request in flight, so the restarted relay takes the framing
    /// up after it and the exchange's end is a boundary again. (Before, such a connection stayed
    /// unfollowed: the campaigns' requests asked twice after a daemon killed while a download
    /// ran through a pooled back-end connection.)
    func testARestartedRelayFollowsAPooledConnectionFoundInsideAnExchange() throws {
        try checkRestartedRelayFollowsThePooledConnection(insideTheSecondExchange: true)
    }

    private func checkRestartedRelayFollowsThePooledConnection(insideTheSecondExchange: Bool) throws {
        try openClientExchange()
        let requests = ["a", "b", "c"].map { Array("GET /\($0) HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8) }
        let answers = ["hello", "goodbye"].map {
            Array("HTTP/1.1 200 OK\r\nContent-Length: \($0.count)\r\n\r\n\($0)".utf8)
        }
        XCTAssertEqual(try play(true, guestISN, 0, .syn), .forward)
        XCTAssertEqual(try play(false, endISN, guestISN &+ 1, [.syn, .ack]), .forward)
        var guestSeq = guestISN &+ 1
        var endSeq = endISN &+ 1
        for index in 0..<3 {
            if index == 1, !insideTheSecondExchange { makeWrapper() }  // between the first exchange and the second
            XCTAssertEqual(try play(true, guestSeq, endSeq, [.ack, .psh], requests[index]), .forward)
            guestSeq &+= UInt32(requests[index].count)
            guard index < 2 else { break }  // the third is in flight: no answer yet
            // Inside the second exchange: its answer's head and part of its body, then the restart.
            let split = index == 1 && insideTheSecondExchange ? answers[index].count - 4 : answers[index].count
            for part in [answers[index][..<split], answers[index][split...]] where !part.isEmpty {
                XCTAssertEqual(try play(false, endSeq, guestSeq, [.ack, .psh], Array(part)), .forward)
                endSeq &+= UInt32(part.count)
                if part.endIndex == split, split < answers[index].count { makeWrapper() }
            }
        }
        let slot = try XCTUnwrap(log.lookup(loggedKey))
        replayTheEndServerConnections()
        _ = sink.takeAll()
        try openNew(answering: synOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: requests[2]), .drop)
        XCTAssertEqual(
            log.current(slot).replayStart.serverOffset, UInt64(requests[0].count + requests[1].count),
            "matched, and trimmed, at the boundary the restarted relay followed")
        XCTAssertEqual(try sink.takeClients().map(\.flags), [[.rst, .ack]], "the new connection's reset, nothing else")
    }

    func testASYNToAnotherEndServerPassesAsANewConnection() throws {
        let slot = try playOldGuest()
        replayTheEndServerConnections()
        let other = try deliverFrame(
            fromGuest: true, seq: newISN, ack: 0, flags: .syn, options: synOptions, port: newPort, to: 9999)
        XCTAssertEqual(other.verdict, .forward)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)
    }

    func testAConnectionNobodyOpensAgainIsClosedTowardItsEndServer() throws {
        let slot = try playOldGuest()
        replayTheEndServerConnections()
        wrapper.splicer.tick(now: start + wrapper.splicer.reopenBoundNanos, sink: sink)
        XCTAssertEqual(sink.takeAll(), 0, "not before the bound")
        wrapper.splicer.tick(now: start + wrapper.splicer.reopenBoundNanos + 1, sink: sink)
        let fin = try XCTUnwrap(try sink.takeClients().first)
        XCTAssertEqual(fin.flags, [.fin, .ack])
        XCTAssertEqual(fin.tuple.sourcePort, oldPort)
        XCTAssertEqual(fin.seq, requestEnd, "after every byte the end server acknowledged")
        XCTAssertEqual(fin.ack, endISN &+ 1 &+ UInt32(answer.count))
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .closingUnclaimed)
        // The end server closes its side: acknowledged, and the record is gone.
        XCTAssertEqual(
            try deliver(
                fromGuest: false, seq: endISN &+ 1 &+ UInt32(answer.count), ack: requestEnd &+ 1, flags: [.fin, .ack]),
            .drop)
        let last = try XCTUnwrap(try sink.takeClients().first)
        XCTAssertEqual(last.flags, .ack)
        XCTAssertEqual(last.seq, requestEnd &+ 1)
        XCTAssertEqual(last.ack, endISN &+ 2 &+ UInt32(answer.count))
        XCTAssertNil(log.lookup(loggedKey))
        XCTAssertEqual(wrapper.splicer.replayTotals.unclaimed, 1)
        XCTAssertEqual(sink.guest.count, 0, "the new guest saw none of it")
    }

    func testAnUnclaimedConnectionWhoseEndServerLacksBytesIsReset() throws {
        _ = try playOldGuest(endServerAcksRequest: false)
        replayTheEndServerConnections()
        wrapper.splicer.tick(now: start + wrapper.splicer.reopenBoundNanos + 1, sink: sink)
        let rst = try XCTUnwrap(try sink.takeClients().first)
        XCTAssertEqual(rst.flags, [.rst, .ack])
        XCTAssertEqual(rst.seq, guestISN &+ 1, "where the end server's acknowledgments stopped")
        XCTAssertNil(log.lookup(loggedKey))
    }

    /// The guest opens a connection from the port of an earlier one whose end the relay did not
    /// see whole (its last ACK lost): the earlier record is dropped and the new connection gets
    /// its own, with its own ISNs and only its own bytes. Before, the new SYN's ISN and bytes
    /// went into the earlier record, which kept the end server's old ISN: a replay would have
    /// caught up a connection that was never logged as it was.
    func testANewConnectionFromAnEarlierOnesPortGetsItsOwnRecord() throws {
        let earlier = try playOldGuest()
        XCTAssertEqual(try deliver(fromGuest: true, seq: guestISN, ack: 0, flags: .syn, options: synOptions), .forward)
        XCTAssertEqual(log.lookup(loggedKey), earlier, "a retransmitted SYN (the record's own ISN) changes nothing")
        XCTAssertEqual(try deliver(fromGuest: true, seq: newISN, ack: 0, flags: .syn, options: synOptions), .forward)
        XCTAssertNil(log.lookup(loggedKey), "the earlier record is gone")
        XCTAssertEqual(
            try deliver(fromGuest: false, seq: newEndISN, ack: newISN &+ 1, flags: [.syn, .ack], options: endOptions),
            .forward)
        XCTAssertEqual(try deliver(fromGuest: true, seq: newISN &+ 1, ack: newEndISN &+ 1, flags: .ack), .forward)
        let shorter = Array("GET /bytes/50?seed=3 HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        XCTAssertEqual(
            try deliver(fromGuest: true, seq: newISN &+ 1, ack: newEndISN &+ 1, flags: [.ack, .psh], payload: shorter),
            .forward)
        let record = log.current(try XCTUnwrap(log.lookup(loggedKey)))
        XCTAssertEqual(record.clientISN, newEndISN)
        XCTAssertEqual(record.serverISN, newISN)
        XCTAssertEqual(record.serverStream.byteCount, UInt64(shorter.count))
    }

    // MARK: Bounded

    /// An exchange on the guest's connection leaves the log once it is complete on both sides
    /// and no client exchange that was in flight before it completed still is; a replay then
    /// opens the connection at that boundary.
    func testAnExchangeLeavesTheLogOnlyOnceNoClientExchangeThatCouldHaveCausedItIsInFlight() throws {
        try openClientExchange()
        func client(
            _ seq: UInt32, _ ack: UInt32, _ flags: TCPFlags, _ payload: [UInt8] = []
        ) throws
            -> SouthSide.Verdict
        {
            try deliverFrame(
                fromGuest: false, seq: seq, ack: ack, flags: flags, payload: payload, port: 8090, to: clientPort
            )
            .verdict
        }
        func service(
            _ seq: UInt32, _ ack: UInt32, _ flags: TCPFlags, _ payload: [UInt8] = []
        ) throws
            -> SouthSide.Verdict
        {
            try deliverFrame(
                fromGuest: true, seq: seq, ack: ack, flags: flags, payload: payload, port: 8090, to: clientPort
            )
            .verdict
        }

        // The proxy fetches it over its own connection: one whole exchange.
        let backendRequest = Array("GET /a HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        let backendResponse = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".utf8)
        XCTAssertEqual(try deliver(fromGuest: true, seq: guestISN, ack: 0, flags: .syn, options: synOptions), .forward)
        XCTAssertEqual(try deliver(fromGuest: false, seq: endISN, ack: guestISN &+ 1, flags: [.syn, .ack]), .forward)
        let end = guestISN &+ 1 &+ UInt32(backendRequest.count)
        XCTAssertEqual(
            try deliver(
                fromGuest: true, seq: guestISN &+ 1, ack: endISN &+ 1, flags: [.ack, .psh], payload: backendRequest),
            .forward)
        XCTAssertEqual(
            try deliver(fromGuest: false, seq: endISN &+ 1, ack: end, flags: [.ack, .psh], payload: backendResponse),
            .forward)
        let responseEnd = endISN &+ 1 &+ UInt32(backendResponse.count)
        XCTAssertEqual(try deliver(fromGuest: true, seq: end, ack: responseEnd, flags: .ack), .forward)
        let slot = try XCTUnwrap(log.lookup(loggedKey))

        // The client's exchange is in flight: a replay would re-run it, and it would send this
        // request again. So the exchange stays in the log.
        wrapper.sweep(now: start)
        XCTAssertEqual(log.current(slot).replayStart.serverOffset, 0)
        XCTAssertEqual(log.clientBytes(slot), backendResponse)

        // The proxy answers the client, which acknowledges it: the client's exchange is done…
        try finishClientExchange()
        // … and the next sweep trims the proxy's exchange.
        wrapper.sweep(now: start + 1_000_000_000)
        let record = log.current(slot)
        XCTAssertEqual(
            record.replayStart,
            ReplayStart(
                clientOffset: UInt64(backendResponse.count), serverOffset: UInt64(backendRequest.count),
                serverCRC: CRC32C.checksum(backendRequest)))
        XCTAssertEqual(log.clientBytes(slot), [], "nothing held")

        // A failover: the connection waits between exchanges. The new guest's connection has
        // nothing of it to re-send: its request is a new one, on a new connection, and the
        // waiting one is closed toward the end server once nobody claimed it.
        replayTheEndServerConnections()
        _ = sink.takeAll()
        try openNew(answering: synOptions)
        let next = try deliverFrame(
            fromGuest: true, seq: newISN &+ 1, ack: newEndISN &+ 1, flags: [.ack, .psh], payload: backendRequest,
            port: newPort)
        XCTAssertEqual(next.verdict, .forward, "the new guest's request goes to the end server")
        XCTAssertEqual(next.segment.tuple.sourcePort, newPort)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)
        wrapper.splicer.tick(now: start + wrapper.splicer.reopenBoundNanos + 1, sink: sink)
        XCTAssertEqual(try sink.takeClients().map(\.flags), [[.fin, .ack]])
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .closingUnclaimed)
    }

    /// nginx without upstream keep-alive reads an answer to its end and closes the back-end
    /// connection before its client has all of it. The connection ends (both FINs) while the
    /// client's exchange is in flight: its record is kept, so a replay that re-runs the client
    /// exchange finds the request already sent (answer and FIN injected, nothing asked again);
    /// once the client's exchange is done, the next sweep frees it. A restarted relay keeps it
    /// too (its first sweep came before its replay, and freed it: the request went out twice).
    func testAnEndedBackEndConnectionIsKeptWhileItsClientExchangeIsInFlight() throws {
        for (index, (replays, restarted)) in [(true, false), (true, true), (false, false)].enumerated() {
            if index > 0 {
                tearDown()
                try setUpWithError()
            }
            try openClientExchange()
            let (slot, backendRequest, backendAnswer) = try playEndedBackEndConnection()
            wrapper.sweep(now: start + 2_000_000_000)
            XCTAssertNotNil(log.lookup(loggedKey), "still kept after a sweep")
            if restarted {
                makeWrapper()  // (it adopts the log's connections at the real clock's now)
                wrapper.sweep(now: Monotonic.nanos() + 2_000_000_000)
                XCTAssertNotNil(log.lookup(loggedKey), "a restarted relay's sweep keeps it too")
            }
            _ = sink.takeAll()
            if replays {
                replayTheEndServerConnections()
                _ = sink.takeAll()
                try openNew(answering: synOptions)
                XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: backendRequest), .drop)
                XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp, "the request is the kept one's")
                let toGuest = try sink.takeGuest()
                XCTAssertEqual(toGuest.filter { !$0.payload.isEmpty }.flatMap(\.payload), backendAnswer)
                XCTAssertTrue(toGuest.contains { $0.flags.contains(.fin) }, "and the end server's FIN")
                XCTAssertEqual(try sink.takeClients().map(\.flags), [[.rst, .ack]], "nothing asked again")
                continue
            }
            // The proxy answers its client, which acknowledges it: the exchange is done, and
            // the next sweep frees the kept record.
            try finishClientExchange()
            wrapper.sweep(now: start + 4_000_000_000)
            XCTAssertNil(log.lookup(loggedKey), "freed once no client exchange that may have caused it is in flight")
        }
    }

    /// The back-end connection of a client exchange, played to its end (both FINs): kept while
    /// that exchange is in flight. Returns its slot, its request and its answer.
    private func playEndedBackEndConnection() throws -> (Slot, [UInt8], [UInt8]) {
        let backendRequest = Array("GET /a HTTP/1.1\r\nHost: 10.77.0.1:9000\r\nConnection: close\r\n\r\n".utf8)
        let backendAnswer = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".utf8)
        let end = guestISN &+ 1 &+ UInt32(backendRequest.count)
        let answerEnd = endISN &+ 1 &+ UInt32(backendAnswer.count)
        XCTAssertEqual(try play(true, guestISN, 0, .syn), .forward)
        XCTAssertEqual(try play(false, endISN, guestISN &+ 1, [.syn, .ack]), .forward)
        XCTAssertEqual(try play(true, guestISN &+ 1, endISN &+ 1, [.ack, .psh], backendRequest), .forward)
        XCTAssertEqual(try play(false, endISN &+ 1, end, [.ack, .psh, .fin], backendAnswer), .forward)
        XCTAssertEqual(try play(true, end, answerEnd &+ 1, [.ack, .fin]), .forward)
        XCTAssertEqual(try play(false, answerEnd &+ 1, end &+ 1, .ack), .forward)
        _ = sink.takeAll()
        return (
            try XCTUnwrap(log.lookup(loggedKey), "kept: its client exchange is in flight"), backendRequest,
            backendAnswer
        )
    }

    /// A client asks again for what it had before the failure (ci, 2026-12-06: two keep-alive
    /// sessions' requests, the same bytes as those of an earlier test's sessions, were answered
    /// from the ended back-end connections the log still kept, and never reached the end
    /// server). The exchange the replay re-ran is done and the new one began after the failure:
    /// the new guest's request is a new one and goes to the end server; at the next sweep the
    /// kept record stops waiting, as nothing can re-send it any more.
    func testTheSameRequestAfterTheFailoverReachesTheEndServer() throws {
        try openClientExchange()
        let (slot, backendRequest, _) = try playEndedBackEndConnection()
        wrapper.beginReplay(now: start, sink: sink) { self.log.current($0).guestInitiated }
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen, "its client exchange may re-send it")
        try finishClientExchange()
        let again = clientISN &+ 1 &+ UInt32(clientRequest.count)
        XCTAssertEqual(
            try deliverFrame(
                fromGuest: false, seq: again, ack: serviceISN &+ 1 &+ UInt32(proxyAnswer.count), flags: [.ack, .psh],
                payload: clientRequest, port: 8090, to: clientPort
            ).verdict, .forward)
        try openNew(answering: synOptions)
        XCTAssertEqual(
            try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: backendRequest), .forward,
            "a new request: to the end server")
        XCTAssertEqual(try sink.takeClients().count, 0, "nothing reset toward the end server")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)
        wrapper.sweep(now: start + 2_000_000_000)
        wrapper.splicer.tick(now: start + 2_000_000_001, sink: sink)
        XCTAssertNil(log.lookup(loggedKey), "freed long before the bound: nothing can re-send it")
        XCTAssertEqual(wrapper.splicer.replayTotals.unclaimed, 1)
    }

    /// The same, when the exchange that caused the ended connection was done before the failure
    /// and the sweep had not come yet: the replay starts by freeing what no exchange in flight
    /// can re-send, so it never waits.
    func testAReplayStartsWithoutWhatNoExchangeInFlightCanReSend() throws {
        try openClientExchange()
        let (slot, backendRequest, _) = try playEndedBackEndConnection()
        try finishClientExchange()
        XCTAssertNotNil(log.lookup(loggedKey), "kept until the next sweep")
        wrapper.beginReplay(now: start, sink: sink) { self.log.current($0).guestInitiated }
        XCTAssertNil(log.lookup(loggedKey), "freed as the replay starts")
        XCTAssertNotEqual(wrapper.splicer.phase(of: slot), .awaitingReopen)
        try openNew(answering: synOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: backendRequest), .forward)
        XCTAssertEqual(try sink.takeClients().count, 0)
    }

    // MARK: Helpers

    /// One old connection of `playOlds`: the guest's port and ISN, the end server's, the request
    /// and the answer (all logged; the guest acknowledged none of the answer).
    private struct Old {
        var port: UInt16, guestISN: UInt32, endISN: UInt32, request: [UInt8], answer: [UInt8]
    }

    /// `count` connections of the old guest to the end server (ports 43000…), each with its own
    /// request (of two lengths, as `seed=9` and `seed=10` make; a POST of `body` bytes, sent in
    /// segments of 1400, when `body` is set), its own answer, and its own TSval offset.
    private func playOlds(_ count: Int, body: Int = 0) throws -> [Old] {
        try openClientExchangeOnce()
        var olds: [Old] = []
        for index in 0..<count {
            let factor = index + 3
            let answer: [UInt8] = (0..<(1000 + 300 * index)).map { (byte: Int) -> UInt8 in
                UInt8(truncatingIfNeeded: byte &* factor)
            }
            let request: [UInt8] =
                body == 0
                ? Array("GET /bytes/9?seed=\(index + 5) HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
                : Array("POST /sha256 HTTP/1.1\r\nHost: h\r\nContent-Length: \(body)\r\n\r\n".utf8)
                    + (0..<body).map { UInt8(truncatingIfNeeded: ($0 &* 31 &+ index) >> 3) }
            let guestISN: UInt32 = 0x1000_0000 &* UInt32(index + 1)
            let endISN: UInt32 = 0x2345_0000 &* UInt32(factor)
            olds.append(
                Old(port: 43000 + UInt16(index), guestISN: guestISN, endISN: endISN, request: request, answer: answer))
            endClockOffsets[43000 + UInt16(index)] = 0x9E37_79B9 &* UInt32(index + 1)
        }
        for old in olds {
            let requestEnd = old.guestISN &+ 1 &+ UInt32(old.request.count)
            _ = try play(true, old.guestISN, 0, .syn, port: old.port)
            _ = try play(false, old.endISN, old.guestISN &+ 1, [.syn, .ack], port: old.port)
            for offset in stride(from: 0, to: old.request.count, by: 1400) {
                let part = Array(old.request[offset..<min(offset + 1400, old.request.count)])
                _ = try play(
                    true, old.guestISN &+ 1 &+ UInt32(offset), old.endISN &+ 1, [.ack, .psh], part, port: old.port)
            }
            _ = try play(false, old.endISN &+ 1, requestEnd, [.ack, .psh], old.answer, port: old.port)
        }
        _ = sink.takeAll()
        return olds
    }

    private func assertSpliced(_ olds: [Old]) throws {
        for old in olds {
            XCTAssertEqual(wrapper.splicer.phase(of: try slot(of: old)), .spliced, "\(old.port)")
        }
    }

    /// A second connection of the old guest to the same end server (port 41001), its request
    /// answered with 1500 bytes.
    private func playOtherOldConnection() throws -> (Slot, [UInt8], [UInt8]) {
        try openClientExchangeOnce()
        let otherPort: UInt16 = 41001
        let otherGuestISN: UInt32 = 0x0100_0000
        let otherEndISN: UInt32 = 0x5500_0000
        let otherRequest = Array("GET /bytes/5000?seed=4 HTTP/1.1\r\nHost: 10.77.0.1:9000\r\n\r\n".utf8)
        let otherAnswer = (0..<1500).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        endClockOffsets[otherPort] = 0xC000_0000  // Linux's per-connection TSval offset
        let otherRequestEnd = otherGuestISN &+ 1 &+ UInt32(otherRequest.count)
        XCTAssertEqual(try play(true, otherGuestISN, 0, .syn, port: otherPort), .forward)
        XCTAssertEqual(
            try deliverFrame(
                fromGuest: false, seq: otherEndISN, ack: otherGuestISN &+ 1, flags: [.syn, .ack], options: endOptions,
                port: otherPort
            ).verdict, .forward)
        XCTAssertEqual(
            try play(true, otherGuestISN &+ 1, otherEndISN &+ 1, [.ack, .psh], otherRequest, port: otherPort), .forward)
        XCTAssertEqual(
            try play(false, otherEndISN &+ 1, otherRequestEnd, [.ack, .psh], otherAnswer, port: otherPort), .forward)
        let second = try XCTUnwrap(
            log.lookup(
                FlowKey(
                    clientAddress: endServer.rawValue, clientPort: endPort, serverAddress: guest.rawValue,
                    serverPort: otherPort)))
        _ = sink.takeAll()
        return (second, otherRequest, otherAnswer)
    }

    /// The old guest's connection, opened again by the new guest from `newPort` and spliced;
    /// what the replay sent on the way is taken. The end server answers the new guest's SYN with
    /// `options` (`endOptions` unless given).
    private func spliceReopened(answering options: TCPOptions? = nil) throws -> Slot {
        let slot = try playOldGuest()
        replayTheEndServerConnections()
        try openNew(answering: options ?? endOptions)
        XCTAssertEqual(try newGuest(seq: newISN &+ 1, ack: newEndISN &+ 1, payload: request), .drop)
        let injected = try sink.takeGuest().reduce(0) { $0 + $1.payload.count }
        XCTAssertEqual(
            try newGuest(seq: newISN &+ 1 &+ UInt32(request.count), ack: newEndISN &+ 1 &+ UInt32(injected)), .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        _ = sink.takeAll()
        return slot
    }

    /// The new guest's connection from `port` (ISN `isn`) to the end server, which answers with
    /// `endISN` and `options`: a real handshake, every frame forwarded, none made by the relay.
    private func openNew(
        port: UInt16? = nil, isn: UInt32? = nil, endISN: UInt32? = nil, answering options: TCPOptions
    ) throws {
        let port = port ?? newPort
        let isn = isn ?? newISN
        let endISN = endISN ?? newEndISN
        XCTAssertEqual(
            try deliverFrame(fromGuest: true, seq: isn, ack: 0, flags: .syn, options: synOptions, port: port).verdict,
            .forward, "the SYN goes to the end server")
        XCTAssertEqual(
            try deliverFrame(
                fromGuest: false, seq: endISN, ack: isn &+ 1, flags: [.syn, .ack], options: options, port: port
            ).verdict, .forward)
        XCTAssertEqual(
            try deliverFrame(fromGuest: true, seq: isn &+ 1, ack: endISN &+ 1, flags: .ack, port: port).verdict,
            .forward)
    }

    private let proxyAnswer = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".utf8)

    /// The proxy answers the exchange `openClientExchange` began, and the client acknowledges
    /// all of it: the exchange is done.
    private func finishClientExchange() throws {
        let clientEnd = clientISN &+ 1 &+ UInt32(clientRequest.count)
        for (fromGuest, seq, ack, flags, payload) in [
            (true, serviceISN &+ 1, clientEnd, TCPFlags([.ack, .psh]), proxyAnswer),
            (false, clientEnd, serviceISN &+ 1 &+ UInt32(proxyAnswer.count), TCPFlags.ack, []),
        ] {
            XCTAssertEqual(
                try deliverFrame(
                    fromGuest: fromGuest, seq: seq, ack: ack, flags: flags, payload: payload, port: 8090, to: clientPort
                ).verdict, .forward)
        }
    }

    /// A client asks the guest's proxy (port 8090, HTTP) for something: its exchange is in flight.
    private func openClientExchange() throws {
        func client(_ seq: UInt32, _ ack: UInt32, _ flags: TCPFlags, _ payload: [UInt8] = []) throws {
            XCTAssertEqual(
                try deliverFrame(
                    fromGuest: false, seq: seq, ack: ack, flags: flags, payload: payload, port: 8090, to: clientPort
                ).verdict, .forward)
        }
        try client(clientISN, 0, .syn)
        XCTAssertEqual(
            try deliverFrame(
                fromGuest: true, seq: serviceISN, ack: clientISN &+ 1, flags: [.syn, .ack], port: 8090, to: clientPort
            ).verdict, .forward)
        try client(clientISN &+ 1, serviceISN &+ 1, .ack)
        try client(clientISN &+ 1, serviceISN &+ 1, [.ack, .psh], clientRequest)
    }

    /// A failover's replay of the guest's connections to the end server. The client connection
    /// whose exchange caused them stays out of it (its replay is SplicerTests' subject, and
    /// its frames would mix with theirs here), its exchange still in flight.
    private func replayTheEndServerConnections() {
        wrapper.splicer.begin(now: start, sink: sink) { self.log.current($0).guestInitiated }
    }

    /// The client exchange that made the guest open its connections to the end server: a
    /// replay re-runs it, and only its back-end requests may be re-sent as logged ones.
    private func openClientExchangeOnce() throws {
        let key = FlowKey(
            clientAddress: endServer.rawValue, clientPort: clientPort, serverAddress: guest.rawValue, serverPort: 8090)
        if log.lookup(key) == nil { try openClientExchange() }
    }

    private func slot(of old: Old) throws -> Slot {
        try XCTUnwrap(
            log.lookup(
                FlowKey(
                    clientAddress: endServer.rawValue, clientPort: endPort, serverAddress: guest.rawValue,
                    serverPort: old.port)))
    }

    private var newKey: FlowKey {
        FlowKey(
            clientAddress: endServer.rawValue, clientPort: endPort, serverAddress: guest.rawValue, serverPort: newPort)
    }

    private var loggedKey: FlowKey {
        FlowKey(
            clientAddress: endServer.rawValue, clientPort: endPort, serverAddress: guest.rawValue, serverPort: oldPort)
    }

    private let synOptions = TCPOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true)
    /// What the end server's SYN/ACK offered the old guest in `playOldGuest`.
    private let endOptions = TCPOptions(maximumSegmentSize: 1400, windowScale: 6, sackPermitted: true)

    /// The old guest opens its connection, sends the request; the end server acknowledges it
    /// (unless told not to) and answers 4000 bytes, 2500 of which the guest acknowledges.
    private func playOldGuest(endServerAcksRequest: Bool = true) throws -> Slot {
        try openClientExchangeOnce()
        XCTAssertEqual(try deliver(fromGuest: true, seq: guestISN, ack: 0, flags: .syn, options: synOptions), .forward)
        XCTAssertNil(log.lookup(loggedKey), "nothing is logged before the end server answers")
        XCTAssertEqual(
            try deliver(
                fromGuest: false, seq: endISN, ack: guestISN &+ 1, flags: [.syn, .ack], options: endOptions),
            .forward)
        XCTAssertEqual(try deliver(fromGuest: true, seq: guestISN &+ 1, ack: endISN &+ 1, flags: .ack), .forward)
        XCTAssertEqual(
            try deliver(fromGuest: true, seq: guestISN &+ 1, ack: endISN &+ 1, flags: [.ack, .psh], payload: request),
            .forward)
        let acked = endServerAcksRequest ? requestEnd : guestISN &+ 1
        for offset in stride(from: 0, to: answer.count, by: 1000) {
            let part = Array(answer[offset..<(offset + 1000)])
            XCTAssertEqual(
                try deliver(
                    fromGuest: false, seq: endISN &+ 1 &+ UInt32(offset), ack: acked, flags: [.ack, .psh], payload: part
                ),
                .forward)
        }
        XCTAssertEqual(try deliver(fromGuest: true, seq: requestEnd, ack: endISN &+ 2501, flags: .ack), .forward)
        let slot = try XCTUnwrap(log.lookup(loggedKey))
        _ = sink.takeAll()
        return slot
    }

    /// One frame of a connection to the end server (a SYN carries `synOptions`).
    private func play(
        _ fromGuest: Bool, _ seq: UInt32, _ ack: UInt32, _ flags: TCPFlags, _ payload: [UInt8] = [],
        port: UInt16? = nil, fromDrainingGuest: Bool = false
    ) throws -> SouthSide.Verdict {
        try deliverFrame(
            fromGuest: fromGuest, seq: seq, ack: ack, flags: flags, payload: payload,
            options: flags.contains(.syn) ? synOptions : TCPOptions(), port: port,
            fromDrainingGuest: fromDrainingGuest
        ).verdict
    }

    private func newGuest(seq: UInt32, ack: UInt32, payload: [UInt8] = []) throws -> SouthSide.Verdict {
        try deliverFrame(
            fromGuest: true, seq: seq, ack: ack, flags: payload.isEmpty ? .ack : [.ack, .psh], payload: payload,
            port: newPort
        ).verdict
    }

    private func deliver(
        fromGuest: Bool, seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8] = [],
        options: TCPOptions = TCPOptions()
    ) throws -> SouthSide.Verdict {
        try deliverFrame(fromGuest: fromGuest, seq: seq, ack: ack, flags: flags, payload: payload, options: options)
            .verdict
    }

    /// One frame between the guest (its local `port`) and the end server (`to`), handed to the
    /// wrapper; returns the verdict and the frame as it left. Both sides use timestamps.
    private func deliverFrame(
        fromGuest: Bool, seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8] = [],
        options: TCPOptions = TCPOptions(), port: UInt16? = nil, to serverPort: UInt16? = nil,
        fromDrainingGuest: Bool = false
    ) throws -> (verdict: SouthSide.Verdict, segment: SentSegment) {
        var options = options
        let local = port ?? oldPort
        let remote = serverPort ?? endPort
        if fromGuest {
            guestClock &+= 1
            options.timestamps = TCPTimestamps(
                value: guestClock, echoReply: endClock &+ endClockOffsets[local, default: 0])
        } else {
            endClock &+= 1
            options.timestamps = TCPTimestamps(
                value: endClock &+ endClockOffsets[local, default: 0], echoReply: guestClock)
        }
        let spec = TCPFrameSpec(
            sourceMAC: fromGuest ? guestMAC : endServerMAC, destinationMAC: fromGuest ? endServerMAC : guestMAC,
            source: fromGuest ? guest : endServer, destination: fromGuest ? endServer : guest,
            sourcePort: fromGuest ? local : remote, destinationPort: fromGuest ? remote : local,
            sequenceNumber: SequenceNumber(seq), acknowledgmentNumber: SequenceNumber(ack), flags: flags,
            window: 2000, options: options)
        let length = try payload.withUnsafeBytes { bytes throws(WireError) in
            try FrameBuilder.tcp(spec, payload: bytes, into: buffer)
        }
        let frame = UnsafeMutableRawBufferPointer(rebasing: buffer[..<length])
        let verdict =
            fromGuest
            ? wrapper.fromGuest(frame, now: start, sink: sink, releasing: true, fromDrainingGuest: fromDrainingGuest)
            : wrapper.fromClient(frame, now: start, sink: sink)
        return (verdict, try SentSegment(Array(frame)))
    }
}
