import FTVMChannel
import FTVMLog
import FTVMWire
import Foundation
import XCTest

@testable import FTVMDataPlane

/// The bounded log, frame by frame: completed HTTP exchanges leave the log once the client has
/// acknowledged them, a replay opens the backup's connection at the first incomplete exchange,
/// and a connection the log cannot hold is served unprotected and reset (never spliced) at a
/// failover (DESIGN.md, "Bounded replay" and invariant 8).
final class BoundedReplayTests: HandPlayedTestCase {
    override class var chunkSize: Int { 256 }

    private let client = IPv4Address(10, 77, 0, 1)
    private let server = IPv4Address(10, 77, 0, 2)
    private let clientMAC = MACAddress(2, 0, 0, 0, 0, 1)
    private let serviceMAC = MACAddress(0x52, 0x54, 0, 0x77, 0, 2)
    private let clientISN: UInt32 = 0xFFFF_FE00  // wraps during the tests
    private let primaryISN: UInt32 = 0x7000_0000
    private let backupISN: UInt32 = 0x0100_0000
    /// The next sequence number each side sends (the server's in the primary's numbering).
    private var clientNext: UInt32 = 0
    private var serverNext: UInt32 = 0
    private var port: UInt16 = 40000

    override func makeWrapper() { makeWrapper(idleSeconds: 600) }

    private func makeWrapper(idleSeconds: UInt64) {
        var policy = SouthSide.Policy()
        policy.httpPorts = [80]
        policy.idleReclaimNanos = idleSeconds * 1_000_000_000
        wrapper = SouthSide(log: log, service: server, policy: policy)
    }

    private func request(_ target: String) -> [UInt8] {
        Array("GET \(target) HTTP/1.1\r\nHost: service.test\r\n\r\n".utf8)
    }

    /// A response whose `Date:` (second `second`) differs between two answers, as a real server's does.
    private func response(_ body: String, second: Int) -> [UInt8] {
        Array(
            ("HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 08:59:\(String(format: "%02d", second)) GMT\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)").utf8)
    }

    // MARK: Trimming

    /// Each exchange leaves the log once the client acknowledged its response: an idle keep-alive
    /// connection holds nothing, whatever its age.
    func testKeepAliveExchangesLeaveTheLogOnceAcknowledged() throws {
        let slot = try open()
        var requests = 0
        var responses = 0
        for index in 0..<50 {
            let ask = request("/item/\(index)")
            let answer = response("item \(index)", second: index % 60)
            try clientSends(ask)
            try serverSends(answer)
            XCTAssertEqual(log.current(slot).clientBytesHeld, UInt64(ask.count), "not acknowledged yet")
            try clientAcks()
            requests += ask.count
            responses += answer.count
            let record = log.current(slot)
            XCTAssertEqual(record.replayStart.clientOffset, UInt64(requests))
            XCTAssertEqual(record.replayStart.serverOffset, UInt64(responses))
            XCTAssertEqual(record.clientBytesHeld, 0)
            XCTAssertEqual(record.replayedServerStream.byteCount, 0)
        }
        XCTAssertEqual(log.usage.counters.trims, 50)
        XCTAssertEqual(wrapper.counters.exchanges, 50)
        XCTAssertLessThanOrEqual(log.usage.chunksUsed, 1, "at most the partly filled chunk the next request goes into")
        XCTAssertTrue(wrapper.isBetweenExchanges(slot))
    }

    /// Pipelined requests in one segment, answered in one coalesced segment: each exchange
    /// leaves when the client's ACK covers its response, not before.
    func testPipelinedExchangesLeaveAsTheirResponsesAreAcknowledged() throws {
        let slot = try open()
        let asks = (0..<3).map { request("/p/\($0)") }
        let answers = (0..<3).map { response("answer \($0)", second: $0) }
        try clientSends(asks.joined().map { $0 })
        try serverSends(answers.joined().map { $0 })
        try clientAcks(upTo: primaryISN &+ 1 &+ UInt32(answers[0].count + answers[1].count + 5))
        var record = log.current(slot)
        XCTAssertEqual(record.replayStart.clientOffset, UInt64(asks[0].count + asks[1].count))
        XCTAssertEqual(record.replayStart.serverOffset, UInt64(answers[0].count + answers[1].count))
        XCTAssertEqual(log.clientBytes(slot), asks[2], "the third request is all that is left")
        XCTAssertEqual(
            record.replayedServerStream.crc, CRC32C.checksum(masked(answers[2])),
            "the checksum covers what follows the start")
        try clientAcks()
        record = log.current(slot)
        XCTAssertEqual(record.clientBytesHeld, 0)
        XCTAssertEqual(log.usage.counters.trims, 2)
    }

    // MARK: Replay at the first incomplete exchange

    /// Two exchanges done, a third half answered: the replay opens the backup's connection at the
    /// third request (the fake SYN at the client's sequence there), injects only it, compares only
    /// the third response (its `Date:` differs, masked), and splices.
    func testReplayOpensTheBackupAtTheFirstIncompleteExchange() throws {
        let slot = try open()
        var before = 0
        var answered = 0
        for index in 0..<2 {
            let ask = request("/old/\(index)")
            let answer = response("old \(index)", second: 10 + index)
            try clientSends(ask)
            try serverSends(answer)
            try clientAcks()
            before += ask.count
            answered += answer.count
        }
        let ask = request("/big")
        let body = String(repeating: "x", count: 900)
        let answer = response(body, second: 20)
        try clientSends(ask)
        try serverSends(Array(answer[..<400]))
        try clientAcks()

        wrapper.splicer.begin(now: 1, sink: sink)
        let syn = try XCTUnwrap(try sink.takeGuest().first)
        XCTAssertEqual(syn.flags, .syn)
        XCTAssertEqual(
            syn.seq, clientISN &+ UInt32(before), "the client's sequence at the incomplete exchange, minus one")
        try guestSends(seq: backupISN, ack: syn.seq &+ 1, flags: [.syn, .ack])
        let opening = try sink.takeGuest()
        XCTAssertEqual(opening.map(\.payload).joined().map { $0 }, ask, "only the incomplete exchange's request")
        XCTAssertEqual(opening.last?.seq, clientISN &+ 1 &+ UInt32(before))
        // The backup answers a second later: another Date. Its first 400 bytes are the client's already.
        let regenerated = response(body, second: 21)
        XCTAssertEqual(
            try guestSends(
                seq: backupISN &+ 1, ack: clientNext, flags: [.ack, .psh], payload: Array(regenerated[..<400])
            ).verdict,
            .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        let rest = try guestSends(
            seq: backupISN &+ 401, ack: clientNext, flags: [.ack, .psh], payload: Array(regenerated[400...]))
        XCTAssertEqual(rest.verdict, .forward)
        XCTAssertEqual(rest.segment.seq, primaryISN &+ 1 &+ UInt32(answered + 400), "translated to the client's view")
        XCTAssertEqual(rest.segment.payload, Array(answer[400...]))
        let translation = try XCTUnwrap(log.current(slot).translation)
        XCTAssertEqual(translation.servingClientBase, UInt64(before))
        XCTAssertEqual(translation.servingServerBase, UInt64(answered))
        XCTAssertEqual(wrapper.splicer.latestReport.connectionTimings.first?.injectedBytes, UInt64(ask.count))
        XCTAssertEqual(wrapper.splicer.latestReport.connectionTimings.first?.regeneratedBytes, 400)
    }

    /// An idle keep-alive connection replays with nothing to inject or regenerate: spliced at the
    /// handshake, and its next request reaches the backup with the client's own sequence numbers.
    func testAnIdleKeepAliveConnectionSplicesAtTheHandshake() throws {
        let slot = try open()
        let ask = request("/version")
        let answer = response("1.0.0\n", second: 1)
        try clientSends(ask)
        try serverSends(answer)
        try clientAcks()
        wrapper.splicer.begin(now: 1, sink: sink)
        let syn = try XCTUnwrap(try sink.takeGuest().first)
        try guestSends(seq: backupISN, ack: syn.seq &+ 1, flags: [.syn, .ack])
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        XCTAssertEqual(try sink.takeGuest().map(\.payload).joined().count, 0, "nothing injected")
        let next = request("/version")
        let forwarded = try clientSends(next)
        XCTAssertEqual(forwarded.verdict, .forward)
        XCTAssertEqual(forwarded.segment.seq, clientISN &+ 1 &+ UInt32(ask.count))
        XCTAssertEqual(forwarded.segment.ack, backupISN &+ 1, "the client's ACK in the backup's numbering")
        let reply = response("2.0.0\n", second: 2)
        let out = try guestSends(seq: backupISN &+ 1, ack: clientNext, flags: [.ack, .psh], payload: reply)
        XCTAssertEqual(out.verdict, .forward)
        XCTAssertEqual(out.segment.seq, primaryISN &+ 1 &+ UInt32(answer.count))
    }

    // MARK: Falling back, and the log's bound

    /// A relay restarted in the middle of a response (a daemon killed and started again) takes
    /// the framing up again at that response's end, which the log noted when its head was seen:
    /// the next exchanges still leave the log, and their `Date:` values are still masked.
    func testARelayRestartedMidResponseFollowsTheFramingFromThatResponsesEnd() throws {
        let slot = try open()
        let first = request("/a")
        try clientSends(first)
        let firstAnswer = response("a", second: 1)
        try serverSends(firstAnswer)
        try clientAcks()
        let body = String(repeating: "b", count: 1000)
        let second = response(body, second: 2)
        let third = response("c", second: 3)
        try clientSends(request("/b") + request("/c"))
        try serverSends(Array(second[..<(second.count - 700)]))
        makeWrapper()  // the daemon restarts: its trackers are gone, the log is not
        try serverSends(Array(second[(second.count - 700)...]))
        try serverSends(third)
        try clientAcks(upTo: primaryISN &+ 1 &+ UInt32(firstAnswer.count + second.count))
        let record = log.current(slot)
        XCTAssertEqual(record.replayStart.clientOffset, UInt64(first.count + request("/b").count))
        XCTAssertEqual(record.replayStart.serverOffset, UInt64(firstAnswer.count + second.count))
        XCTAssertEqual(log.clientBytes(slot), request("/c"), "only the third exchange is held")
        XCTAssertEqual(record.replayedServerStream.crc, CRC32C.checksum(masked(third)), "its Date: masked")
        XCTAssertEqual(wrapper.counters.framingStopped, [:])
        try clientAcks()
        XCTAssertEqual(log.current(slot).clientBytesHeld, 0)
    }

    /// Bytes that are not HTTP on an HTTP port: the framing is given up (counted), nothing is
    /// trimmed, and the whole history stays replayable; nothing crashes.
    func testANonHTTPStreamFallsBackToWholeHistory() throws {
        let slot = try open()
        let hello = Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)
        try clientSends(hello)
        try serverSends(Array("SSH-2.0-other\r\n".utf8))
        try clientAcks()
        let record = log.current(slot)
        XCTAssertEqual(record.replayStart.clientOffset, 0)
        XCTAssertEqual(log.clientBytes(slot), hello)
        XCTAssertEqual(record.masking, .http(until: 0))
        XCTAssertEqual(wrapper.counters.framingStopped.values.reduce(0, +), 1, "\(wrapper.counters.framingStopped)")
    }

    /// A connection whose history outgrows its budget passes unlogged from then on, and a
    /// failover resets it cleanly instead of splicing a partial history.
    func testAConnectionOverItsBudgetIsServedThenResetAtAFailover() throws {
        log.connectionBudget = 1000
        let slot = try open()
        let head = Array("POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".utf8)
        try clientSends(head)
        for _ in 0..<5 { XCTAssertEqual(try clientSends([UInt8](repeating: 7, count: 1000)).verdict, .forward) }
        XCTAssertEqual(log.current(slot).protection, .overBudget)
        XCTAssertEqual(log.usage.bytesHeld, 0)
        wrapper.splicer.begin(now: 1, sink: sink)
        let reset = try XCTUnwrap(try sink.takeClients().first)
        XCTAssertEqual(reset.flags, [.rst, .ack])
        XCTAssertEqual(reset.seq, primaryISN &+ 1)
        XCTAssertNil(log.record(slot))
        XCTAssertTrue(wrapper.splicer.latestReport.resets.first?.contains("over the per-connection budget") == true)
    }

    /// A client that stops sending (vanished, or its FIN never passed) loses its record after the
    /// idle bound; a live one keeps it.
    func testASilentClientsRecordIsReclaimed() throws {
        makeWrapper(idleSeconds: 5)
        let quiet = try open(now: 1_000_000_000)
        port = 40001
        let chatty = try open(now: 1_000_000_000)
        try clientSends(request("/a"), now: 4_000_000_000)
        wrapper.sweep(now: 7_000_000_000)
        XCTAssertNil(log.record(quiet))
        XCTAssertNotNil(log.record(chatty))
        XCTAssertEqual(log.usage.counters.reclaimed, 1)
    }

    // MARK: Explicit trims

    /// Another protocol names its boundaries itself, in offsets of its own socket: the trim
    /// happens once the client acknowledged that far.
    func testAnExplicitTrimFromTheGuest() throws {
        port = 40002
        let slot = try open(serverPort: 7070)
        try clientSends(Array("PING\n".utf8), serverPort: 7070)
        try serverSends(Array("PONG\n".utf8), serverPort: 7070)
        let trim = TrimRequest(
            clientAddress: client.rawValue, clientPort: port, serverPort: 7070, clientOffset: 5, serverOffset: 5)
        wrapper.explicitTrim(trim, fromDrainingGuest: false)
        XCTAssertEqual(log.current(slot).replayStart.clientOffset, 0, "not before the client acknowledged the reply")
        try clientSends(Array("ECHO hi\n".utf8), serverPort: 7070)  // (it acknowledges PONG)
        XCTAssertEqual(
            log.current(slot).replayStart,
            ReplayStart(clientOffset: 5, serverOffset: 5, serverCRC: CRC32C.checksum(Array("PONG\n".utf8))))
        XCTAssertEqual(log.clientBytes(slot), Array("ECHO hi\n".utf8))
        // A server offset inside a segment is no checkpoint: nothing can be trimmed there.
        try serverSends(Array("hi\nX".utf8), serverPort: 7070)
        wrapper.explicitTrim(
            TrimRequest(
                clientAddress: client.rawValue, clientPort: port, serverPort: 7070, clientOffset: 13, serverOffset: 8),
            fromDrainingGuest: false)
        XCTAssertEqual(wrapper.counters.explicitTrimsMissed, 1)
        XCTAssertEqual(wrapper.counters.explicitTrimsUsed, 1)
    }

    // MARK: Upgrade at a boundary

    /// While an upgrade drains, a pinned connection between two exchanges moves to the new guest
    /// at once; one in the middle of an exchange stays until it completes.
    func testAnUpgradeMovesConnectionsBetweenExchanges() throws {
        let idle = try open()
        try clientSends(request("/version"))
        try serverSends(response("1.0.0\n", second: 3))
        try clientAcks()
        port = 40003
        let busy = try open()
        try clientSends(request("/slow"))
        XCTAssertEqual(wrapper.pinAll(), 2)
        XCTAssertEqual(wrapper.moveIdlePinned(now: 1, sink: sink), 1)
        XCTAssertEqual(wrapper.splicer.phase(of: idle), .handshaking)
        XCTAssertFalse(wrapper.isPinned(idle))
        XCTAssertTrue(wrapper.isPinned(busy))
        XCTAssertEqual(try sink.takeGuest().first?.flags, .syn)
    }

    /// At the end of a drain, the connections still pinned are replayed into the new guest.
    func testTheConnectionsStillPinnedAtTheEndOfADrainAreReplayed() throws {
        let slot = try open()
        try clientSends(request("/slow"))
        try serverSends(Array(response(String(repeating: "y", count: 500), second: 4)[..<100]))
        XCTAssertEqual(wrapper.pinAll(), 1)
        XCTAssertEqual(wrapper.moveIdlePinned(now: 1, sink: sink), 0)
        wrapper.splicer.begin(now: 2, sink: sink, only: wrapper.isPinned)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .handshaking)
        XCTAssertEqual(wrapper.splicer.latestReport.connections, 1)
    }

    // MARK: The data path's liveness

    /// How long the oldest unanswered client segment has waited at `now` (ms; nil: none waits).
    private func unanswered(now: UInt64) -> Int? {
        wrapper.unansweredSince().flatMap { now > $0 ? Int((now - $0) / 1_000_000) : nil }
    }

    /// A client segment that needs an answer starts a clock that any frame from the guest stops:
    /// the health loop fails a primary whose network is stuck while its agent still beats. Pure
    /// ACKs need no answer, and a corrupt segment (the guest drops it silently) starts nothing.
    func testUnansweredClientSegmentsShowAStuckDataPath() throws {
        _ = try open(now: 1_000_000_000)
        XCTAssertNil(unanswered(now: 2_000_000_000), "the handshake was answered")
        try clientAcks()
        XCTAssertNil(unanswered(now: 2_000_000_000), "a pure ACK needs no answer")
        try clientSends(request("/a"), now: 3_000_000_000)
        XCTAssertEqual(unanswered(now: 3_500_000_000), 500)
        try clientSends(request("/b"), now: 3_400_000_000)
        XCTAssertEqual(unanswered(now: 3_500_000_000), 500, "the oldest unanswered segment counts")
        try serverSends(response("a", second: 1))
        XCTAssertNil(unanswered(now: 4_000_000_000), "the guest answered")
        // A segment with a broken checksum starts no clock.
        let spec = TCPFrameSpec(
            sourceMAC: clientMAC, destinationMAC: serviceMAC, source: client, destination: server, sourcePort: port,
            destinationPort: 80, sequenceNumber: SequenceNumber(clientNext),
            acknowledgmentNumber: SequenceNumber(serverNext),
            flags: [.ack, .psh], window: 65535)
        let length = try [UInt8](repeating: 1, count: 10).withUnsafeBytes { bytes throws(WireError) in
            try FrameBuilder.tcp(spec, payload: bytes, into: buffer)
        }
        buffer[length - 1] ^= 0xFF
        _ = wrapper.fromClient(
            UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]), now: 5_000_000_000, sink: sink)
        XCTAssertNil(unanswered(now: 6_000_000_000))
    }

    /// A client whose ARP entry for the service expired sends only ARP requests: one for the
    /// service's address starts the clock too (a restarted daemon sees no segment that was
    /// already waiting), any frame from the guest stops it, and other ARP starts nothing.
    func testAnUnansweredARPRequestForTheServiceShowsAStuckDataPath() throws {
        func arp(asking target: IPv4Address, now: UInt64) throws {
            let length = try FrameBuilder.arp(
                operation: .request, senderMAC: clientMAC, senderIP: client, targetMAC: .zero, targetIP: target,
                ethernetDestination: .broadcast, into: buffer)
            XCTAssertEqual(
                wrapper.fromClient(UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]), now: now, sink: sink),
                .forward)
        }
        try arp(asking: IPv4Address(10, 77, 0, 9), now: 1_000_000_000)
        XCTAssertNil(unanswered(now: 2_000_000_000), "an ARP request for another address")
        try arp(asking: server, now: 2_000_000_000)
        XCTAssertEqual(unanswered(now: 5_000_000_000), 3000)
        try arp(asking: server, now: 4_000_000_000)
        XCTAssertEqual(unanswered(now: 5_000_000_000), 3000, "the oldest unanswered request counts")
        try serverSends(response("a", second: 1))
        XCTAssertNil(unanswered(now: 6_000_000_000), "the guest answered")
    }

    /// A guest silent for a second is probed (an ARP probe for the service); once it has answered
    /// one, each probe needs an answer and starts the clock, so a dead NIC shows while every
    /// client only waits for data (pure ACKs start nothing). Its answer stops the clock and goes
    /// to no client; another guest on the link is learnt afresh.
    func testASilentGuestIsProbedAndAnUnansweredProbeShowsAStuckDataPath() throws {
        let second: UInt64 = 1_000_000_000
        func answer(now: UInt64) throws {
            let length = try FrameBuilder.arp(
                operation: .reply, senderMAC: serviceMAC, senderIP: server, targetMAC: SouthSide.Probe.mac,
                targetIP: .any, ethernetDestination: SouthSide.Probe.mac, into: buffer)
            XCTAssertEqual(
                wrapper.fromGuest(UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]), now: now, sink: sink),
                .drop, "the answer to the relay's probe reaches no client")
        }
        XCTAssertFalse(wrapper.probeDue(port: 0, now: 5 * second), "no guest connected")
        XCTAssertFalse(wrapper.probeDue(port: 3, now: 10 * second), "a guest just connected")
        XCTAssertFalse(wrapper.probeDue(port: 3, now: 10 * second + second / 2))
        XCTAssertTrue(wrapper.probeDue(port: 3, now: 11 * second), "silent for a second")
        XCTAssertFalse(wrapper.probeDue(port: 3, now: 11 * second + second / 2), "one probe a second")
        XCTAssertNil(unanswered(now: 12 * second), "a guest that never answered a probe is not judged by one")
        try answer(now: 11 * second + 2_000_000)
        XCTAssertFalse(wrapper.probeDue(port: 3, now: 12 * second), "it spoke 0.998 s ago")
        XCTAssertTrue(wrapper.probeDue(port: 3, now: 12 * second + 2_000_000))
        XCTAssertEqual(unanswered(now: 13 * second), 998, "the probe waits for an answer")
        XCTAssertTrue(wrapper.probeDue(port: 3, now: 13 * second + 2_000_000))
        XCTAssertEqual(unanswered(now: 14 * second), 1998, "the oldest unanswered probe counts")
        try answer(now: 14 * second)
        XCTAssertNil(unanswered(now: 14 * second), "answered")
        XCTAssertFalse(wrapper.probeDue(port: 4, now: 20 * second), "another guest: silent from now")
        XCTAssertTrue(wrapper.probeDue(port: 4, now: 21 * second))
        XCTAssertNil(unanswered(now: 22 * second), "it has not answered a probe yet")
    }

    // MARK: Plumbing

    /// `bytes` as the log checksums them: `Date:` values masked.
    private func masked(_ bytes: [UInt8]) -> [UInt8] {
        var text = String(decoding: bytes, as: UTF8.self)
        if let range = text.range(of: #"(?<=Date: )[^\r]*"#, options: .regularExpression) {
            text.replaceSubrange(
                range, with: String(repeating: "-", count: text.distance(from: range.lowerBound, to: range.upperBound)))
        }
        return Array(text.utf8)
    }

    @discardableResult
    private func open(serverPort: UInt16 = 80, now: UInt64 = 0) throws -> Slot {
        clientNext = clientISN &+ 1
        serverNext = primaryISN &+ 1
        try deliver(fromClient: true, seq: clientISN, ack: 0, flags: [.syn], serverPort: serverPort, now: now)
        try deliver(fromClient: false, seq: primaryISN, ack: clientNext, flags: [.syn, .ack], serverPort: serverPort)
        try deliver(fromClient: true, seq: clientNext, ack: serverNext, flags: [.ack], serverPort: serverPort, now: now)
        return try XCTUnwrap(
            log.lookup(
                FlowKey(
                    clientAddress: client.rawValue, clientPort: port, serverAddress: server.rawValue,
                    serverPort: serverPort)))
    }

    @discardableResult
    private func clientSends(
        _ bytes: [UInt8], serverPort: UInt16 = 80, now: UInt64 = 0
    ) throws
        -> (verdict: SouthSide.Verdict, segment: SentSegment)
    {
        defer { clientNext &+= UInt32(bytes.count) }
        return try deliver(
            fromClient: true, seq: clientNext, ack: serverNext, flags: [.ack, .psh], payload: bytes,
            serverPort: serverPort, now: now)
    }

    private func serverSends(_ bytes: [UInt8], serverPort: UInt16 = 80) throws {
        try deliver(
            fromClient: false, seq: serverNext, ack: clientNext, flags: [.ack, .psh], payload: bytes,
            serverPort: serverPort)
        serverNext &+= UInt32(bytes.count)
    }

    private func clientAcks(upTo ack: UInt32? = nil, serverPort: UInt16 = 80) throws {
        try deliver(fromClient: true, seq: clientNext, ack: ack ?? serverNext, flags: [.ack], serverPort: serverPort)
    }

    @discardableResult
    private func guestSends(
        seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8] = []
    ) throws
        -> (verdict: SouthSide.Verdict, segment: SentSegment)
    {
        try deliver(fromClient: false, seq: seq, ack: ack, flags: flags, payload: payload, serverPort: 80)
    }

    /// Builds one frame and hands it to the wrapper; returns the verdict and the frame as it left.
    @discardableResult
    private func deliver(
        fromClient: Bool, seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8] = [], serverPort: UInt16,
        now: UInt64 = 0
    ) throws -> (verdict: SouthSide.Verdict, segment: SentSegment) {
        let spec = TCPFrameSpec(
            sourceMAC: fromClient ? clientMAC : serviceMAC, destinationMAC: fromClient ? serviceMAC : clientMAC,
            source: fromClient ? client : server, destination: fromClient ? server : client,
            sourcePort: fromClient ? port : serverPort, destinationPort: fromClient ? serverPort : port,
            sequenceNumber: SequenceNumber(seq), acknowledgmentNumber: SequenceNumber(ack), flags: flags, window: 65535,
            options: flags.contains(.syn)
                ? TCPOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true) : TCPOptions())
        let length = try payload.withUnsafeBytes { bytes throws(WireError) in
            try FrameBuilder.tcp(spec, payload: bytes, into: buffer)
        }
        let frame = UnsafeMutableRawBufferPointer(rebasing: buffer[..<length])
        let verdict =
            fromClient
            ? wrapper.fromClient(frame, now: now, sink: sink)
            : wrapper.fromGuest(frame, now: now, sink: sink, releasing: true)
        return (verdict, try SentSegment(Array(frame)))
    }
}
