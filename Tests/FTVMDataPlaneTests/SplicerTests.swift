import FTVMLog
import FTVMWire
import Foundation
import XCTest

@testable import FTVMDataPlane

/// A failover played by hand, without guests: a client talks to a "primary" through the south
/// side, then the splicer moves the connection onto a "backup" whose segments the test writes,
/// and every frame the replay makes is recorded and checked (DESIGN.md, "Replay").
final class SplicerTests: HandPlayedTestCase {

    private let client = IPv4Address(10, 77, 0, 1)
    private let server = IPv4Address(10, 77, 0, 2)
    private let clientMAC = MACAddress(2, 0, 0, 0, 0, 1)
    /// SouthSide's default service MAC: where replayed frames to the guest are addressed.
    private let serviceMAC = MACAddress(0x52, 0x54, 0, 0x77, 0, 2)
    private let clientISN: UInt32 = 0xFFFF_FF00  // the client's stream wraps during the test
    private let primaryISN: UInt32 = 0x1000_0000
    private let backupISN: UInt32 = 0xF000_0000  // so backup − primary wraps too
    /// When the replay begins (monotonic nanos).
    private let start: UInt64 = 5_000_000_000

    /// RFC 7323 clocks: each segment takes the next TSval. The serving guest's clock restarts
    /// with a new guest's SYN/ACK: the primary's is far ahead of the backup's (7), so an
    /// untranslated TSval would fail the client's PAWS check.
    private var clientClock: UInt32 = 1000
    private var serverClock: UInt32 = 900_000
    /// The newest TSval the client received, which it echoes.
    private var clientEcho: UInt32 = 0

    private let request = Array("GET /files/report.bin HTTP/1.1\r\nHost: service.test\r\nAccept: */*\r\n\r\n".utf8)
    /// 3000 bytes the primary sent; the client acknowledged the first 2000.
    private let response = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
    private let acked = 2000

    // MARK: The happy path

    func testFailoverReplaysTheConnectionAndSplicesIt() throws {
        let slot = try playPrimary()
        let lastPrimaryTSval = serverClock
        let clientTSval = clientClock

        // 1. A fake SYN with the client's ISN and SYN options, as the client.
        wrapper.splicer.begin(now: start, sink: sink)
        XCTAssertEqual(sink.clients.count, 0)
        let syns = try sink.takeGuest()
        XCTAssertEqual(syns.count, 1)
        let syn = try XCTUnwrap(syns.first)
        XCTAssertEqual(syn.flags, .syn)
        XCTAssertEqual(syn.seq, clientISN)
        XCTAssertEqual(
            syn.options,
            TCPOptions(
                maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true,
                timestamps: TCPTimestamps(value: clientTSval, echoReply: 0)))
        XCTAssertEqual(syn.sourceMAC, clientMAC)
        XCTAssertEqual(syn.destinationMAC, serviceMAC)
        XCTAssertEqual(
            syn.tuple,
            FourTuple(sourceAddress: client, sourcePort: 40000, destinationAddress: server, destinationPort: 80))
        XCTAssertTrue(syn.checksumValid)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .handshaking)
        XCTAssertEqual(wrapper.splicer.latestReport.connections, 1)
        XCTAssertEqual(wrapper.splicer.latestReport.pending, 1)

        // 2. The backup's SYN/ACK is captured; a fake ACK and the logged request go to it.
        XCTAssertEqual(try answerSYN(isn: backupISN, windowScale: 5).verdict, .drop)
        XCTAssertEqual(sink.clients.count, 0, "the backup's SYN/ACK never reaches the client")
        let opening = try sink.takeGuest()
        XCTAssertEqual(opening.count, 2)
        let fakeACK = try XCTUnwrap(opening.first)
        XCTAssertEqual(fakeACK.flags, .ack)
        XCTAssertEqual(fakeACK.seq, clientISN &+ 1)
        XCTAssertEqual(fakeACK.ack, backupISN &+ 1)
        XCTAssertEqual(fakeACK.payload, [])
        XCTAssertEqual(fakeACK.options.timestamps, TCPTimestamps(value: clientTSval, echoReply: serverClock))
        XCTAssertTrue(fakeACK.checksumValid)
        let injected = try XCTUnwrap(opening.last)
        XCTAssertEqual(injected.flags, [.ack, .psh])
        XCTAssertEqual(injected.seq, clientISN &+ 1)
        XCTAssertEqual(injected.ack, backupISN &+ 1, "nothing regenerated is acknowledged yet")
        XCTAssertEqual(injected.payload, request)
        XCTAssertEqual(injected.payload, log.clientBytes(slot), "exactly the logged bytes")
        XCTAssertTrue(injected.checksumValid)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)

        // The client's retransmission meanwhile: its bytes reach the backup by injection only.
        XCTAssertEqual(
            try deliver(
                fromClient: true, seq: clientISN &+ 1, ack: primaryISN &+ 1, flags: [.ack, .psh], payload: request
            ).verdict,
            .drop)

        // 3. The regenerated response: dropped, acknowledged for the client up to what it acked.
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        var acks: [UInt32] = []
        for offset in stride(from: 0, to: response.count, by: 1000) {
            XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
            let (verdict, _) = try regenerate(from: offset, count: 1000, isn: backupISN)
            XCTAssertEqual(verdict, .drop, "the client already has byte \(offset)")
            for segment in try sink.takeGuest() {
                XCTAssertEqual(segment.flags, .ack)
                XCTAssertEqual(segment.seq, requestEnd)
                XCTAssertEqual(segment.payload, [])
                XCTAssertTrue(segment.checksumValid)
                acks.append(segment.ack)
            }
        }
        XCTAssertEqual(acks, [backupISN &+ 1001, backupISN &+ 2001], "never past what the client acknowledged")
        XCTAssertEqual(sink.clients.count, 0)

        // 4. Spliced: the whole logged stream matched and the backup holds the whole request.
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        let translation = Translation(
            sequenceDelta: backupISN &- primaryISN, timestampDelta: (lastPrimaryTSval &+ 1) &- 7, servingWindowScale: 5)
        XCTAssertEqual(log.current(slot).translation, translation)
        XCTAssertEqual(log.record(slot)?.translation, translation, "committed for a restarted daemon")
        let report = wrapper.splicer.latestReport
        XCTAssertEqual(report.spliced, 1)
        XCTAssertEqual(report.pending, 0)
        XCTAssertEqual(report.reset, 0)
        XCTAssertEqual(report.connectionTimings.first?.regeneratedBytes, 3000)
        XCTAssertEqual(report.connectionTimings.first?.injectedBytes, UInt64(request.count))

        // 5. New bytes from the backup pass, translated into the client's view.
        let more = [UInt8](repeating: 0x5A, count: 500)
        let (verdict, forwarded) = try deliver(
            fromClient: false, seq: backupISN &+ 3001, ack: requestEnd, flags: [.ack, .psh], payload: more,
            window: 2000,
            now: start + 1_000_000)
        XCTAssertEqual(verdict, .forward)
        XCTAssertEqual(forwarded.seq, primaryISN &+ 3001, "seq − (B − P)")
        XCTAssertEqual(forwarded.ack, requestEnd)
        let stamps = try XCTUnwrap(forwarded.options.timestamps)
        assertNewer(stamps.value, than: lastPrimaryTSval)
        XCTAssertEqual(stamps.echoReply, clientClock, "the client's own clock is never shifted")
        XCTAssertEqual(forwarded.window, (2000 << 5) >> 7, "the backup's window in the client's scale")
        XCTAssertEqual(forwarded.payload, more)
        XCTAssertTrue(forwarded.checksumValid)
        XCTAssertEqual(log.current(slot).serverSendMax, primaryISN &+ 3501, "the log stays in the client's view")
        XCTAssertEqual(log.current(slot).serverStream.byteCount, 3500)
        XCTAssertEqual(wrapper.splicer.latestReport.firstByteNanos, start + 1_000_000)

        // 6. The client lacks the bytes it never acknowledged: its ACK and SACK move to the backup.
        let sack = try SACKBlocks([
            SACKBlock(left: SequenceNumber(primaryISN &+ 3001), right: SequenceNumber(primaryISN &+ 3501))
        ])
        let (clientVerdict, toBackup) = try deliver(
            fromClient: true, seq: requestEnd, ack: primaryISN &+ 2001, flags: .ack, sack: sack)
        XCTAssertEqual(clientVerdict, .forward)
        XCTAssertEqual(toBackup.ack, backupISN &+ 2001, "ack + (B − P)")
        XCTAssertEqual(
            Array(toBackup.options.sackBlocks),
            [SACKBlock(left: SequenceNumber(backupISN &+ 3001), right: SequenceNumber(backupISN &+ 3501))])
        XCTAssertEqual(
            toBackup.options.timestamps, TCPTimestamps(value: clientClock, echoReply: serverClock),
            "TSecr in the backup's clock")
        XCTAssertTrue(toBackup.checksumValid)
        XCTAssertEqual(log.current(slot).serverAckedByClient, primaryISN &+ 2001, "the log keeps the client's view")

        // The backup retransmits what the client lacks; it reaches the client translated.
        let (resent, retransmission) = try regenerate(from: 2000, count: 1000, isn: backupISN)
        XCTAssertEqual(resent, .forward)
        XCTAssertEqual(retransmission.seq, primaryISN &+ 2001)
        XCTAssertEqual(retransmission.payload, Array(response[2000..<3000]))
        XCTAssertTrue(retransmission.checksumValid)
        XCTAssertEqual(sink.guest.count + sink.clients.count, 0, "a spliced connection makes no frames of its own")
    }

    /// A spliced connection's TSO super-frame from the new guest (20000 bytes in one frame, its
    /// checksum partial, as the guest's virtio-net hands it over): translated whole, its checksum
    /// field left for the kernel to finish, and the server stream extended by all of it.
    func testASuperFrameWithAPartialChecksumIsTranslatedWhole() throws {
        let slot = try playPrimary()
        try spliceIntoBackup()
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        let more = (0..<20000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
        let (verdict, forwarded) = try deliver(
            fromClient: false, seq: backupISN &+ 3001, ack: requestEnd, flags: [.ack, .psh], payload: more,
            window: 2000, now: start + 1_000_000, partialChecksum: true)
        XCTAssertEqual(verdict, .forward)
        XCTAssertEqual(forwarded.seq, primaryISN &+ 3001, "seq − (B − P)")
        XCTAssertEqual(forwarded.payload, more)
        XCTAssertEqual(log.current(slot).serverStream.byteCount, 23000)
        // The field still holds the pseudo-header's sum; finished over the translated segment
        // (what the kernel does when it cuts the frame), the checksum verifies.
        var frame = Array(buffer[..<(14 + (Int(buffer[16]) << 8 | Int(buffer[17])))])
        let seed = InternetChecksum.tcpPseudoHeaderSum(source: server, destination: client, tcpLength: frame.count - 34)
        XCTAssertEqual(UInt16(frame[50]) << 8 | UInt16(frame[51]), seed)
        XCTAssertFalse(forwarded.checksumValid, "not finished yet")
        let finished = frame[34...].withUnsafeBytes { InternetChecksum.checksum($0) }
        frame[50] = UInt8(finished >> 8)
        frame[51] = UInt8(finished & 0xFF)
        XCTAssertTrue(try SentSegment(frame).checksumValid)
    }

    /// A `Date:` value that differs is the one difference a replay forgives (HTTPDateMask).
    func testADifferentDateHeaderStillSplices() throws {
        let head = "HTTP/1.1 200 OK\r\nDate: Mon, 06 May 2024 10:00:00 GMT\r\nContent-Length: 2900\r\n\r\n"
        var original = Array(head.utf8)
        original += response[original.count...]
        let slot = try playPrimary(response: original)
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        var regenerated = original
        regenerated.replaceSubrange(
            0..<head.utf8.count, with: head.replacingOccurrences(of: "10:00:00", with: "10:00:07").utf8)
        XCTAssertNotEqual(regenerated, original)
        for offset in stride(from: 0, to: 3000, by: 1000) {
            XCTAssertEqual(try regenerate(from: offset, count: 1000, isn: backupISN, bytes: regenerated).verdict, .drop)
        }
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        XCTAssertEqual(wrapper.splicer.latestReport.reset, 0)
    }

    func testAClientsCloseIsInjectedAfterItsBytes() throws {
        let slot = try playPrimary()
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        XCTAssertEqual(
            try deliver(fromClient: true, seq: requestEnd, ack: primaryISN &+ 2001, flags: [.ack, .fin]).verdict,
            .forward)
        XCTAssertEqual(log.current(slot).nextClientSequence, requestEnd &+ 1)
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try sink.takeGuest()
        _ = try answerSYN(isn: backupISN)
        let opening = try sink.takeGuest()
        XCTAssertEqual(opening.map(\.flags), [.ack, [.ack, .psh], [.ack, .fin]])
        XCTAssertEqual(opening.last?.seq, requestEnd, "the FIN right after the logged bytes")
        XCTAssertEqual(opening.last?.payload, [])
        for offset in stride(from: 0, to: 3000, by: 1000) {
            _ = try regenerate(from: offset, count: 1000, isn: backupISN)
        }
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp, "the backup has not acknowledged the FIN yet")
        let verdict = try deliver(fromClient: false, seq: backupISN &+ 3001, ack: requestEnd &+ 1, flags: .ack).verdict
        XCTAssertEqual(verdict, .drop, "nothing in it the client lacks")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
    }

    func testClientBytesArrivingDuringTheReplayAreLoggedAndInjected() throws {
        let slot = try playPrimary()
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try sink.takeGuest()
        // A pipelined request while the backup has not answered the fake SYN yet.
        let second = Array("GET /more HTTP/1.1\r\nHost: service.test\r\n\r\n".utf8)
        let verdict = try deliver(
            fromClient: true, seq: requestEnd, ack: primaryISN &+ 2001, flags: [.ack, .psh], payload: second
        ).verdict
        XCTAssertEqual(verdict, .drop, "the backup has no connection to take it yet")
        XCTAssertEqual(log.clientBytes(slot), request + second, "logged all the same")
        _ = try answerSYN(isn: backupISN)
        let injected = try sink.takeGuest().filter { !$0.payload.isEmpty }
        XCTAssertEqual(injected.map(\.seq), [clientISN &+ 1])
        XCTAssertEqual(injected.first?.payload, request + second)
    }

    func testARegeneratedSegmentCrossingTheEndOfWhatTheClientHadPassesTranslated() throws {
        let slot = try playPrimary()
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        _ = try sink.takeGuest()
        // The backup segments its output differently: 1500 bytes, then 2000 of which 500 are new.
        let output = response + [UInt8](repeating: 0x77, count: 500)
        XCTAssertEqual(try regenerate(from: 0, count: 1500, isn: backupISN, bytes: output).verdict, .drop)
        let (verdict, forwarded) = try regenerate(from: 1500, count: 2000, isn: backupISN, bytes: output)
        XCTAssertEqual(verdict, .forward)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        XCTAssertEqual(forwarded.seq, primaryISN &+ 1501)
        XCTAssertEqual(forwarded.payload, Array(output[1500..<3500]))
        XCTAssertTrue(forwarded.checksumValid)
        XCTAssertEqual(try sink.takeGuest().map(\.ack), [backupISN &+ 1501, backupISN &+ 2001])
        XCTAssertEqual(log.current(slot).serverSendMax, primaryISN &+ 3501)
        XCTAssertEqual(log.current(slot).serverStream.byteCount, 3500, "the new bytes extend the logged stream")
    }

    /// A primary that failed right after its SYN/ACK: the client's PAWS state holds that
    /// SYN/ACK's TSval, so the backup's clock must go on from there.
    func testTimestampsGoOnFromAPrimarysSYNACK() throws {
        let slot = try playPrimary(response: [], acked: 0, silent: true)
        let synACKTSval = serverClock
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try sink.takeGuest()
        // The backup's clock is behind the primary's (mod 2^32).
        _ = try answerSYN(isn: backupISN, tsval: synACKTSval &- 1_000_000)
        let fakeACK = try XCTUnwrap(try sink.takeGuest().first)
        XCTAssertEqual(fakeACK.options.timestamps?.echoReply, serverClock, "timestamps were negotiated with the backup")
        let (verdict, forwarded) = try regenerate(from: 0, count: 1000, isn: backupISN)
        XCTAssertEqual(verdict, .forward, "the first byte the client lacks")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        assertNewer(try XCTUnwrap(forwarded.options.timestamps).value, than: synACKTSval)
        XCTAssertTrue(forwarded.checksumValid)
    }

    // MARK: What cannot be carried on is reset

    func testDivergentRegeneratedBytesResetBothSides() throws {
        let slot = try playPrimary()
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        _ = try sink.takeGuest()
        var divergent = response
        divergent[1500] ^= 0xFF
        for offset in [0, 1000] {
            XCTAssertEqual(try regenerate(from: offset, count: 1000, isn: backupISN, bytes: divergent).verdict, .drop)
        }
        _ = sink.takeAll()
        // Only the end of what the client had is compared (the log keeps one checksum).
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
        XCTAssertEqual(try regenerate(from: 2000, count: 1000, isn: backupISN, bytes: divergent).verdict, .drop)
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        try assertReset(
            slot, reason: "regenerated output differs from the 3000 bytes the client received",
            clientAcked: primaryISN &+ 2001,
            guestRSTs: [requestEnd, requestEnd])
        // What the backup sends afterwards belongs to no logged connection any more.
        XCTAssertEqual(try regenerate(from: 0, count: 1000, isn: backupISN).verdict, .forward)
        XCTAssertEqual(wrapper.counters.untracked, 1)
    }

    func testBackupClosingBeforeRegeneratingEverythingIsReset() throws {
        let slot = try playPrimary()
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        _ = try sink.takeGuest()
        XCTAssertEqual(try regenerate(from: 0, count: 1000, isn: backupISN).verdict, .drop)
        _ = try sink.takeGuest()
        // 1000 more bytes and a FIN: the stream ends 1000 bytes short of what the client saw.
        XCTAssertEqual(try regenerate(from: 1000, count: 1000, isn: backupISN, flags: [.ack, .fin]).verdict, .drop)
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        try assertReset(
            slot, reason: "the new guest closed before regenerating what the client had",
            clientAcked: primaryISN &+ 2001,
            guestRSTs: [requestEnd, requestEnd])
    }

    func testBackupResettingDuringReplayIsReset() throws {
        let slot = try playPrimary()
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        _ = try sink.takeGuest()
        XCTAssertEqual(try deliver(fromClient: false, seq: backupISN &+ 1, ack: 0, flags: .rst).verdict, .drop)
        // The backup acknowledged nothing: its rcv_nxt is its ISN + 1 or past the injected request.
        try assertReset(
            slot, reason: "the new guest reset the connection during replay", clientAcked: primaryISN &+ 2001,
            guestRSTs: [clientISN &+ 1, clientISN &+ 1 &+ UInt32(request.count)])
    }

    // MARK: Pacing and timers

    func testInjectionIsPacedByTheBackupsWindow() throws {
        // A 5000-byte upload the primary acknowledged without answering yet.
        let upload = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let slot = try playPrimary(request: upload, response: [], acked: 0)
        let uploadStart = clientISN &+ 1
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try sink.takeGuest()
        // The backup offers 2000 bytes of window (a SYN's window is never scaled) and an MSS of 1000.
        _ = try answerSYN(isn: backupISN, windowScale: 0, mss: 1000, window: 2000)
        var received: [UInt8] = []
        func injected(_ expected: [Int]) throws {
            let segments = try sink.takeGuest().filter { !$0.payload.isEmpty }
            XCTAssertEqual(segments.map { Int($0.seq &- uploadStart) }, expected)
            for segment in segments {
                XCTAssertLessThanOrEqual(segment.payload.count, 1000, "one MSS at most")
                XCTAssertTrue(segment.checksumValid)
                XCTAssertEqual(Int(segment.seq &- uploadStart), received.count, "in order, no gap")
                received += segment.payload
            }
        }
        try injected([0, 1000])
        func ackOnly(_ bytes: Int) throws -> SouthSide.Verdict {
            try deliver(
                fromClient: false, seq: backupISN &+ 1, ack: uploadStart &+ UInt32(bytes), flags: .ack, window: 2000,
                now: start + 1_000_000
            ).verdict
        }
        // The guest acknowledges the first 1000 bytes: the window slides by 1000.
        XCTAssertEqual(try ackOnly(1000), .drop)
        try injected([2000])
        XCTAssertEqual(try ackOnly(3000), .drop)
        try injected([3000, 4000])
        XCTAssertEqual(received, upload)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp, "the backup has not acknowledged it all")
        XCTAssertEqual(try ackOnly(5000), .drop)
        try injected([])
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
    }

    func testTickResendsTheSYNAndGivesUpAtTheDeadline() throws {
        let slot = try playPrimary()
        wrapper.splicer.deadlineNanos = 1_000_000_000
        wrapper.splicer.begin(now: start, sink: sink)
        let first = try XCTUnwrap(try sink.takeGuest().first)
        wrapper.splicer.tick(now: start + 150_000_000, sink: sink)
        XCTAssertEqual(sink.guest.count, 0, "not yet 200 ms")
        wrapper.splicer.tick(now: start + 250_000_000, sink: sink)
        let again = try sink.takeGuest()
        XCTAssertEqual(again.count, 1)
        XCTAssertEqual(again.first?.flags, .syn)
        XCTAssertEqual(again.first?.seq, clientISN)
        XCTAssertEqual(again.first?.options, first.options)
        wrapper.splicer.tick(now: start + 400_000_000, sink: sink)
        XCTAssertEqual(sink.guest.count, 0, "200 ms from the last SYN, not from the start")
        wrapper.splicer.tick(now: start + 460_000_000, sink: sink)
        XCTAssertEqual(try sink.takeGuest().map(\.flags), [.syn])
        wrapper.splicer.tick(now: start + 1_000_000_001, sink: sink)
        try assertReset(
            slot, reason: "replay made no progress for 1 s", clientAcked: primaryISN &+ 2001, guestRSTs: [])
        wrapper.splicer.tick(now: start + 2_000_000_000, sink: sink)
        XCTAssertEqual(sink.guest.count + sink.clients.count, 0, "nothing pending any more")
    }

    /// The deadline bounds progress, not size: a catch-up that keeps regenerating is not reset
    /// however long it takes; one that stops is, a deadline after its last step.
    func testTheDeadlineCountsFromTheLastProgress() throws {
        let slot = try playPrimary()
        wrapper.splicer.deadlineNanos = 1_000_000_000
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN, now: start + 500_000_000)
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        for step in 1...2 {
            let now = start + UInt64(step) * 900_000_000 + 500_000_000
            wrapper.splicer.tick(now: now, sink: sink)
            _ = try deliver(
                fromClient: false, seq: backupISN &+ 1 &+ UInt32((step - 1) * 1000), ack: requestEnd,
                flags: [.ack, .psh],
                payload: Array(response[((step - 1) * 1000)..<(step * 1000)]), window: 2000, now: now)
            XCTAssertEqual(
                wrapper.splicer.phase(of: slot), .catchingUp, "step \(step), \(Double(now - start) / 1e9) s in")
        }
        let lastStep = start + 2_300_000_000
        wrapper.splicer.tick(now: lastStep + 999_000_000, sink: sink)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
        _ = sink.takeAll()
        wrapper.splicer.tick(now: lastStep + 1_000_000_001, sink: sink)
        try assertReset(
            slot, reason: "replay made no progress for 1 s", clientAcked: primaryISN &+ 2001,
            guestRSTs: [requestEnd, requestEnd])
    }

    /// A daemon killed mid-replay left the backup holding the connection, established, with the
    /// request in: it answers the next daemon's fake SYN with a challenge ACK, not a SYN/ACK. The
    /// replay resets that stale connection at the sequence the ACK names and sends the SYN again;
    /// the backup's fresh answer then replays and splices as usual.
    func testABareACKToTheFakeSYNClearsAStaleConnection() throws {
        let slot = try playPrimary()
        wrapper.splicer.begin(now: start, sink: sink)
        XCTAssertEqual(try sink.takeGuest().map(\.flags), [.syn])
        let staleISN: UInt32 = 0x2000_0000
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        XCTAssertEqual(
            try deliver(fromClient: false, seq: staleISN &+ 1 &+ 1500, ack: requestEnd, flags: .ack).verdict, .drop)
        let answer = try sink.takeGuest()
        XCTAssertEqual(answer.map(\.flags), [.rst, .syn], "the stale connection reset, then the SYN again")
        XCTAssertEqual(answer.first?.seq, requestEnd, "exactly the sequence the stale connection expects")
        XCTAssertEqual(answer.last?.seq, clientISN)
        XCTAssertEqual(sink.clients.count, 0, "the client sees nothing of it")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .handshaking)
        _ = try answerSYN(isn: backupISN)
        for offset in stride(from: 0, to: 3000, by: 1000) {
            _ = try regenerate(from: offset, count: 1000, isn: backupISN)
        }
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
    }

    /// A daemon killed mid-replay left the backup a half-open connection from a fake SYN of
    /// another ISN (its range resume moved the ISN back; the next daemon, without the response
    /// heads, regenerates). Linux answers the next SYN with a RST that drops it: the replay sends
    /// the SYN once more, and resets the connection only when the guest refuses that one too.
    func testARefusedFakeSYNIsSentOnceMore() throws {
        for refusals in [1, 2] {
            if refusals > 1 {
                tearDown()
                try setUpWithError()
            }
            let slot = try playPrimary()
            wrapper.splicer.begin(now: start, sink: sink)
            XCTAssertEqual(try sink.takeGuest().map(\.flags), [.syn])
            for refusal in 1...refusals {
                XCTAssertEqual(
                    try deliver(fromClient: false, seq: 0, ack: clientISN &+ 1, flags: [.rst, .ack]).verdict, .drop)
                if refusal == 1 {
                    let again = try sink.takeGuest()
                    XCTAssertEqual(again.map(\.flags), [.syn], "the SYN again")
                    XCTAssertEqual(again.first?.seq, clientISN)
                    XCTAssertEqual(wrapper.splicer.phase(of: slot), .handshaking)
                }
            }
            if refusals == 2 {
                XCTAssertEqual(wrapper.splicer.latestReport.reset, 1, "refused twice: reset")
                continue
            }
            _ = try answerSYN(isn: backupISN)
            for offset in stride(from: 0, to: 3000, by: 1000) {
                _ = try regenerate(from: offset, count: 1000, isn: backupISN)
            }
            XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
            XCTAssertEqual(wrapper.splicer.latestReport.reset, 0)
        }
    }

    func testTickReinjectsWhatTheBackupDidNotAcknowledge() throws {
        let slot = try playPrimary()
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        _ = try sink.takeGuest()
        wrapper.splicer.tick(now: start + 300_000_000, sink: sink)
        let resent = try sink.takeGuest()
        XCTAssertEqual(
            resent.filter { !$0.payload.isEmpty }.map(\.payload), [request], "from what the backup acknowledged")
        XCTAssertTrue(resent.allSatisfy { $0.ack == backupISN &+ 1 })
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
    }

    /// The client holds more than the log says it acknowledged (its last ACKs reached a daemon
    /// that was dead), and the backup, having regenerated past that, waits for ACKs: the tick asks
    /// the client with a segment just below its ACK, and its answer lets the replay acknowledge
    /// the backup, which then finishes and splices.
    func testAStalledCatchUpAsksTheClientWhatItHolds() throws {
        let slot = try playPrimary()
        makeWrapper()  // a restarted daemon: it has heard nothing from the client yet
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        _ = try regenerate(from: 0, count: 2500, isn: backupISN)
        _ = try sink.takeAll()
        wrapper.splicer.tick(now: start + 300_000_000, sink: sink)
        let probes = try sink.takeClients()
        XCTAssertEqual(probes.count, 1, "\(probes)")
        let probe = try XCTUnwrap(probes.first)
        XCTAssertEqual(probe.seq, primaryISN &+ UInt32(acked), "one below what the client acknowledged")
        XCTAssertEqual(probe.destinationMAC, clientMAC, "the clients' MAC, as the log kept it")
        XCTAssertEqual(probe.ack, clientISN &+ 1 &+ UInt32(request.count))
        XCTAssertEqual(probe.flags, .ack)
        XCTAssertTrue(probe.payload.isEmpty)
        XCTAssertEqual(probe.options.timestamps?.value, log.current(slot).serverTimestamps?.value)
        XCTAssertTrue(probe.checksumValid)
        _ = try sink.takeGuest()

        // The client answers with what it holds: the whole response.
        let answer = try deliver(
            fromClient: true, seq: clientISN &+ 1 &+ UInt32(request.count), ack: primaryISN &+ 1 &+ 3000, flags: .ack)
        XCTAssertEqual(answer.verdict, .drop)
        XCTAssertEqual(try sink.takeGuest().map(\.ack), [backupISN &+ 2501], "the backup's 2500 bytes acknowledged")
        XCTAssertEqual(try regenerate(from: 2500, count: 500, isn: backupISN).verdict, .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)

        // A catch-up whose regenerated bytes the client has all acknowledged asks nothing.
        XCTAssertEqual(try sink.takeClients().count, 0)
    }

    // MARK: Which connections replay

    func testASecondFailoverReplaysASplicedConnectionFromTheClientsView() throws {
        let slot = try playPrimary()
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        try spliceIntoBackup()
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        // The backup serves 500 more bytes; the client acknowledges everything.
        let more = [UInt8](repeating: 0x33, count: 500)
        XCTAssertEqual(
            try deliver(fromClient: false, seq: backupISN &+ 3001, ack: requestEnd, flags: [.ack, .psh], payload: more)
                .verdict,
            .forward)
        let lastBackupTSval = try XCTUnwrap(log.current(slot).serverTimestamps).value
        XCTAssertEqual(
            try deliver(fromClient: true, seq: requestEnd, ack: primaryISN &+ 3501, flags: .ack).verdict, .forward)
        _ = sink.takeAll()

        // The backup fails too: a third guest (another ISN, its clock at 3) takes the connection over.
        let third: UInt32 = 0x0000_0100
        wrapper.splicer.begin(now: start + 10_000_000_000, sink: sink)
        let syn = try XCTUnwrap(try sink.takeGuest().first)
        XCTAssertEqual(syn.seq, clientISN, "the client's ISN, as the log keeps it")
        XCTAssertEqual(syn.options.windowScale, 7)
        XCTAssertEqual(try answerSYN(isn: third, windowScale: 7, tsval: 3, now: start + 10_000_000_000).verdict, .drop)
        let opening = try sink.takeGuest()
        XCTAssertEqual(opening.last?.payload, request)
        XCTAssertEqual(opening.last?.ack, third &+ 1)
        let everything = response + more
        var acks: [UInt32] = []
        for offset in stride(from: 0, to: everything.count, by: 700) {
            let count = min(700, everything.count - offset)
            XCTAssertEqual(try regenerate(from: offset, count: count, isn: third, bytes: everything).verdict, .drop)
            acks += try sink.takeGuest().map(\.ack)
        }
        XCTAssertEqual(acks.last, third &+ 3501, "the client had everything, and acknowledged it")
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        XCTAssertEqual(log.current(slot).translation?.sequenceDelta, third &- primaryISN)
        XCTAssertEqual(wrapper.splicer.latestReport.spliced, 1)

        let (verdict, forwarded) = try deliver(
            fromClient: false, seq: third &+ 3501, ack: requestEnd, flags: [.ack, .psh], payload: [1, 2, 3],
            now: start + 10_100_000_000)
        XCTAssertEqual(verdict, .forward)
        XCTAssertEqual(forwarded.seq, primaryISN &+ 3501)
        assertNewer(try XCTUnwrap(forwarded.options.timestamps).value, than: lastBackupTSval)
        XCTAssertTrue(forwarded.checksumValid)
        let (_, toThird) = try deliver(fromClient: true, seq: requestEnd, ack: primaryISN &+ 3504, flags: .ack)
        XCTAssertEqual(toThird.ack, third &+ 3504)
        XCTAssertEqual(toThird.options.timestamps?.echoReply, serverClock)
    }

    func testAConnectionTheOldGuestNeverAnsweredIsNotReplayed() throws {
        let answered = try playPrimary()
        // Another client's SYN reached the primary, which failed before answering it.
        let syn = TCPOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true)
        XCTAssertEqual(
            try deliver(fromClient: true, seq: 77, ack: 0, flags: .syn, options: syn, port: 40001).verdict, .forward)
        let unanswered = try XCTUnwrap(log.lookup(key(port: 40001)))
        wrapper.splicer.begin(now: start, sink: sink)
        let syns = try sink.takeGuest()
        XCTAssertEqual(syns.map(\.tuple.sourcePort), [40000], "only the answered connection")
        XCTAssertEqual(wrapper.splicer.latestReport.connections, 1)
        XCTAssertEqual(wrapper.splicer.phase(of: answered), .handshaking)
        XCTAssertEqual(wrapper.splicer.phase(of: unanswered), .idle)
        XCTAssertNil(log.current(unanswered).translation)
        // The client's retransmitted SYN reaches the new guest, whose SYN/ACK is its own.
        XCTAssertEqual(
            try deliver(fromClient: true, seq: 77, ack: 0, flags: .syn, options: syn, port: 40001).verdict, .forward)
        XCTAssertEqual(
            try deliver(fromClient: false, seq: 999, ack: 78, flags: [.syn, .ack], options: syn, port: 40001).verdict,
            .forward)
        XCTAssertEqual(log.current(unanswered).serverISN, 999)
        XCTAssertEqual(sink.guest.count + sink.clients.count, 0)
    }

    func testAConnectionWhoseClientSpokeTLSToTheGuestIsResetAtOnce() throws {
        // A TLS record of a handshake (a ClientHello's first five bytes), then its body: the
        // old guest's answer was encrypted with keys no new guest can have.
        let hello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x40] + (0..<64).map { UInt8($0) }
        let slot = try playPrimary(request: hello)
        wrapper.splicer.begin(now: start, sink: sink)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .idle, "not replayed")
        XCTAssertFalse(try sink.takeGuest().contains { $0.flags.contains(.syn) }, "no fake SYN to the new guest")
        XCTAssertEqual(try sink.takeClients().map(\.flags), [[.rst, .ack]], "the client is told at once")
        let report = wrapper.splicer.latestReport
        XCTAssertEqual(report.reset, 1)
        XCTAssertTrue(report.resets.first?.contains("spoke TLS to the guest") == true, "\(report.resets)")
        XCTAssertEqual(wrapper.splicer.replayTotals.resets[.tlsInGuest], 1)
    }

    // MARK: The close fence

    func testGuestClosesAreFencedUnlessReleased() throws {
        let slot = try playPrimary()
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        for flags: TCPFlags in [[.ack, .fin], .rst] {
            XCTAssertEqual(
                try deliver(fromClient: false, seq: primaryISN &+ 3001, ack: requestEnd, flags: flags).verdict, .fence)
        }
        XCTAssertFalse(log.current(slot).serverFINSent, "a fenced FIN is not logged")
        XCTAssertEqual(
            try deliver(
                fromClient: false, seq: primaryISN &+ 3001, ack: requestEnd, flags: [.ack, .fin], releasing: true
            ).verdict,
            .forward)
        XCTAssertTrue(log.current(slot).serverFINSent)

        // A spliced connection: the fenced FIN is held untranslated, and translated when released.
        try spliceIntoBackup()
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        let (held, frame) = try deliver(
            fromClient: false, seq: backupISN &+ 3001, ack: requestEnd, flags: [.ack, .fin])
        XCTAssertEqual(held, .fence)
        XCTAssertEqual(frame.seq, backupISN &+ 3001, "untouched until released")
        let (released, sent) = try deliver(
            fromClient: false, seq: backupISN &+ 3001, ack: requestEnd, flags: [.ack, .fin], releasing: true)
        XCTAssertEqual(released, .forward)
        XCTAssertEqual(sent.seq, primaryISN &+ 3001)
        XCTAssertTrue(sent.checksumValid)
    }

    // MARK: A restarted daemon

    func testARestartedDaemonTranslatesLikeTheOneThatSpliced() throws {
        let slot = try playPrimary()
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        try spliceIntoBackup()
        let before = try deliver(fromClient: false, seq: backupISN &+ 3001, ack: requestEnd, flags: .ack, window: 2000)
            .segment
        // The daemon restarts: a new wrapper on the same log picks the translation up.
        wrapper = SouthSide(log: log, service: server)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        let after = try deliver(fromClient: false, seq: backupISN &+ 3001, ack: requestEnd, flags: .ack, window: 2000)
            .segment
        XCTAssertEqual(after.seq, before.seq)
        XCTAssertEqual(after.window, before.window, "the backup's window scale survives the restart")
        XCTAssertEqual(after.options.timestamps?.value, before.options.timestamps.map { $0.value &+ 1 })
        let toBackup = try deliver(fromClient: true, seq: requestEnd, ack: primaryISN &+ 3001, flags: .ack).segment
        XCTAssertEqual(toBackup.ack, backupISN &+ 3001)
    }

    // MARK: Helpers

    private func key(port: UInt16) -> FlowKey {
        FlowKey(clientAddress: client.rawValue, clientPort: port, serverAddress: server.rawValue, serverPort: 80)
    }

    /// The primary's part, before the fault: the handshake with every option, `request` from the
    /// client, the primary's ACK of it (unless `silent`: nothing after its SYN/ACK), `response`
    /// in 1000-byte segments, the first `acked` bytes of it acknowledged.
    @discardableResult
    private func playPrimary(
        request: [UInt8]? = nil, response: [UInt8]? = nil, acked: Int? = nil, silent: Bool = false
    )
        throws -> Slot
    {
        let request = request ?? self.request
        let response = response ?? self.response
        let acked = acked ?? self.acked
        let options = TCPOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true)
        XCTAssertEqual(
            try deliver(fromClient: true, seq: clientISN, ack: 0, flags: .syn, options: options).verdict, .forward)
        XCTAssertEqual(
            try deliver(fromClient: false, seq: primaryISN, ack: clientISN &+ 1, flags: [.syn, .ack], options: options)
                .verdict,
            .forward)
        XCTAssertEqual(
            try deliver(fromClient: true, seq: clientISN &+ 1, ack: primaryISN &+ 1, flags: .ack).verdict, .forward)
        for offset in stride(from: 0, to: request.count, by: 1448) {
            let part = Array(request[offset..<min(offset + 1448, request.count)])
            let seq = clientISN &+ 1 &+ UInt32(offset)
            let verdict = try deliver(
                fromClient: true, seq: seq, ack: primaryISN &+ 1, flags: [.ack, .psh], payload: part
            ).verdict
            XCTAssertEqual(verdict, .forward)
        }
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        if !silent {
            XCTAssertEqual(
                try deliver(fromClient: false, seq: primaryISN &+ 1, ack: requestEnd, flags: .ack).verdict, .forward)
        }
        for offset in stride(from: 0, to: response.count, by: 1000) {
            let part = Array(response[offset..<min(offset + 1000, response.count)])
            let seq = primaryISN &+ 1 &+ UInt32(offset)
            let verdict = try deliver(fromClient: false, seq: seq, ack: requestEnd, flags: [.ack, .psh], payload: part)
                .verdict
            XCTAssertEqual(verdict, .forward)
        }
        if acked > 0 {
            XCTAssertEqual(
                try deliver(fromClient: true, seq: requestEnd, ack: primaryISN &+ 1 &+ UInt32(acked), flags: .ack)
                    .verdict, .forward)
        }
        let slot = try XCTUnwrap(log.lookup(key(port: 40000)))
        let record = log.current(slot)
        XCTAssertEqual(record.serverISN, primaryISN)
        XCTAssertEqual(record.serverStream.byteCount, UInt64(response.count))
        XCTAssertEqual(record.serverAckedByClient, primaryISN &+ 1 &+ UInt32(acked))
        XCTAssertEqual(record.serverTimestamps?.value, serverClock)
        _ = sink.takeAll()
        return slot
    }

    /// The new guest answers the fake SYN.
    /// Replays the primary's connection into the backup (ISN `backupISN`), which regenerates the
    /// whole response: that splices it.
    private func spliceIntoBackup() throws {
        wrapper.splicer.begin(now: start, sink: sink)
        _ = try answerSYN(isn: backupISN)
        for offset in stride(from: 0, to: 3000, by: 1000) {
            _ = try regenerate(from: offset, count: 1000, isn: backupISN)
        }
    }

    private func answerSYN(
        isn: UInt32, windowScale: UInt8 = 5, mss: UInt16 = 1460, window: UInt16 = 64240, tsval: UInt32 = 7,
        now: UInt64? = nil
    ) throws -> (verdict: SouthSide.Verdict, segment: SentSegment) {
        let options = TCPOptions(maximumSegmentSize: mss, windowScale: windowScale, sackPermitted: true)
        return try deliver(
            fromClient: false, seq: isn, ack: clientISN &+ 1, flags: [.syn, .ack], options: options, window: window,
            tsval: tsval,
            now: now ?? start, releasing: true)
    }

    /// The new guest sends `count` bytes of `bytes` (by default the primary's response) from
    /// `offset`, as it regenerates them, having received the whole request.
    private func regenerate(
        from offset: Int, count: Int, isn: UInt32, bytes: [UInt8]? = nil, flags: TCPFlags = [.ack, .psh]
    )
        throws -> (verdict: SouthSide.Verdict, segment: SentSegment)
    {
        let payload = Array((bytes ?? response)[offset..<(offset + count)])
        return try deliver(
            fromClient: false, seq: isn &+ 1 &+ UInt32(offset), ack: clientISN &+ 1 &+ UInt32(request.count),
            flags: flags,
            payload: payload, window: 2000)
    }

    /// Builds one frame and hands it to the wrapper; returns the verdict and the frame as it left
    /// (rewritten in place when translated). Every segment carries timestamps: the client's
    /// clock, or the serving guest's (`tsval` restarts it, as a new guest's SYN/ACK does).
    private func deliver(
        fromClient: Bool, seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8] = [],
        options: TCPOptions = TCPOptions(),
        sack: SACKBlocks = SACKBlocks(), window: UInt16 = 500, tsval: UInt32? = nil, now: UInt64? = nil,
        releasing: Bool = false,
        port: UInt16 = 40000, partialChecksum: Bool = false
    ) throws -> (verdict: SouthSide.Verdict, segment: SentSegment) {
        var options = options
        options.sackBlocks = sack
        if fromClient {
            clientClock &+= 1
            options.timestamps = TCPTimestamps(value: clientClock, echoReply: flags.contains(.ack) ? clientEcho : 0)
        } else {
            serverClock = tsval ?? serverClock &+ 1
            options.timestamps = TCPTimestamps(value: serverClock, echoReply: clientClock)
        }
        let spec = TCPFrameSpec(
            sourceMAC: fromClient ? clientMAC : serviceMAC, destinationMAC: fromClient ? serviceMAC : clientMAC,
            source: fromClient ? client : server, destination: fromClient ? server : client,
            sourcePort: fromClient ? port : 80, destinationPort: fromClient ? 80 : port,
            sequenceNumber: SequenceNumber(seq), acknowledgmentNumber: SequenceNumber(ack), flags: flags,
            window: window,
            options: options)
        let length = try payload.withUnsafeBytes { bytes throws(WireError) in
            try FrameBuilder.tcp(spec, payload: bytes, into: buffer)
        }
        let frame = UnsafeMutableRawBufferPointer(rebasing: buffer[..<length])
        if partialChecksum {
            // As a sender with checksum offload leaves it: the pseudo-header's sum only.
            let seed = InternetChecksum.tcpPseudoHeaderSum(
                source: spec.source, destination: spec.destination, tcpLength: length - 34)
            frame[50] = UInt8(seed >> 8)
            frame[51] = UInt8(seed & 0xFF)
        }
        let verdict =
            fromClient
            ? wrapper.fromClient(frame, partialChecksum: partialChecksum, now: 0, sink: sink)
            : wrapper.fromGuest(
                frame, partialChecksum: partialChecksum, now: now ?? start, sink: sink, releasing: releasing)
        let segment = try SentSegment(Array(frame))
        // The client echoes the newest TSval that reached it, in the client's view.
        if !fromClient, verdict == .forward, let stamps = segment.options.timestamps { clientEcho = stamps.value }
        return (verdict, segment)
    }

    /// `tsval` is after `previous` in RFC 7323's modular order: the client's PAWS check (§5) passes.
    private func assertNewer(_ tsval: UInt32, than previous: UInt32, file: StaticString = #filePath, line: UInt = #line)
    {
        XCTAssertGreaterThan(
            Int32(bitPattern: tsval &- previous), 0, "TSval \(tsval) after \(previous)", file: file, line: line)
    }

    /// The replay reset `slot`: one RST to the client at the sequence it acknowledged, RSTs to
    /// the guest at `guestRSTs` (where its rcv_nxt may be), the record closed, the reason reported.
    private func assertReset(
        _ slot: Slot, reason: String, clientAcked: UInt32, guestRSTs: [UInt32], file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        XCTAssertNil(log.lookup(key(port: 40000)), "the record is closed", file: file, line: line)
        XCTAssertNil(log.record(slot), file: file, line: line)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .idle, file: file, line: line)
        let toClients = try sink.takeClients()
        XCTAssertEqual(toClients.count, 1, file: file, line: line)
        let rst = try XCTUnwrap(toClients.first, file: file, line: line)
        XCTAssertEqual(rst.flags, [.rst, .ack], file: file, line: line)
        XCTAssertEqual(rst.seq, clientAcked, "what the client acknowledged", file: file, line: line)
        XCTAssertEqual(rst.ack, clientISN &+ 1 &+ UInt32(request.count), file: file, line: line)
        XCTAssertEqual(
            rst.tuple,
            FourTuple(sourceAddress: server, sourcePort: 80, destinationAddress: client, destinationPort: 40000),
            file: file, line: line)
        XCTAssertEqual(rst.destinationMAC, clientMAC, file: file, line: line)
        XCTAssertTrue(rst.checksumValid, file: file, line: line)
        let toGuest = try sink.takeGuest()
        XCTAssertEqual(toGuest.map(\.seq), guestRSTs, file: file, line: line)
        for segment in toGuest {
            XCTAssertEqual(segment.flags, .rst, file: file, line: line)
            XCTAssertEqual(
                segment.tuple,
                FourTuple(sourceAddress: client, sourcePort: 40000, destinationAddress: server, destinationPort: 80),
                file: file, line: line)
            XCTAssertTrue(segment.checksumValid, file: file, line: line)
        }
        let report = wrapper.splicer.latestReport
        XCTAssertEqual(report.reset, 1, file: file, line: line)
        XCTAssertEqual(report.spliced, 0, file: file, line: line)
        XCTAssertEqual(report.pending, 0, file: file, line: line)
        XCTAssertEqual(report.resets.count, 1, file: file, line: line)
        XCTAssertTrue(report.resets.first?.contains(reason) == true, "\(report.resets)", file: file, line: line)
        XCTAssertTrue(
            report.resets.first?.contains("10.77.0.1:40000") == true, "names the connection", file: file, line: line)
    }
}

// MARK: Range resume

/// An open response with a strong validator is resumed with a range request instead of
/// regenerated (`RangeResume`): the rewritten request goes to the backup, whose fake SYN's ISN
/// moves back by the bytes the range adds, and a matching `206` is spliced at the resume point.
extension SplicerTests {
    private static let bodyLength = 100_000
    private static let rangeBody = (0..<bodyLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 9) }
    private static let resumeAt = 80_000

    private static func head200(etag: String = "\"v1-186a0\"") -> [UInt8] {
        Array(
            "HTTP/1.1 200 OK\r\nContent-Length: \(bodyLength)\r\nETag: \(etag)\r\nAccept-Ranges: bytes\r\n\r\n".utf8)
    }

    /// The primary sent the head and 90,000 body bytes; the client acknowledged 80,000 of them.
    private func playRangePrimary(etag: String = "\"v1-186a0\"") throws -> (Slot, head: [UInt8]) {
        let head = Self.head200(etag: etag)
        let slot = try playPrimary(
            response: head + Self.rangeBody[..<90_000], acked: head.count + Self.resumeAt)
        return (slot, head)
    }

    private var rewrittenRequest: [UInt8] {
        Array(request.dropLast(2)) + Array("Range: bytes=80000-\r\nIf-Range: \"v1-186a0\"\r\n\r\n".utf8)
    }

    /// The backup answers the fake SYN (its ACK one past `clientISN − shift`) and takes the
    /// rewritten request: returns what the replay sent it.
    private func openRangeReplay(shift: UInt32) throws -> [SentSegment] {
        wrapper.splicer.begin(now: start, sink: sink)
        let syn = try XCTUnwrap(try sink.takeGuest().first)
        XCTAssertEqual(syn.seq, clientISN &- shift, "the fake ISN moves back by the bytes the range adds")
        let options = TCPOptions(maximumSegmentSize: 1460, windowScale: 5, sackPermitted: true)
        XCTAssertEqual(
            try deliver(
                fromClient: false, seq: backupISN, ack: clientISN &- shift &+ 1, flags: [.syn, .ack], options: options,
                window: 64240, tsval: 7, now: start, releasing: true
            ).verdict, .drop)
        return try sink.takeGuest()
    }

    func testAnOpenResponseWithAStrongETagIsResumedWithARange() throws {
        let (slot, head) = try playRangePrimary()
        let shift = UInt32(rewrittenRequest.count - request.count)
        let opening = try openRangeReplay(shift: shift)
        XCTAssertEqual(opening.count, 2)
        XCTAssertEqual(opening.first?.seq, clientISN &- shift &+ 1, "the fake ACK")
        let injected = try XCTUnwrap(opening.last)
        XCTAssertEqual(injected.seq, clientISN &- shift &+ 1)
        XCTAssertEqual(
            String(decoding: injected.payload, as: UTF8.self), String(decoding: rewrittenRequest, as: UTF8.self))
        XCTAssertTrue(injected.checksumValid)
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        XCTAssertEqual(
            injected.seq &+ UInt32(injected.payload.count), requestEnd, "later client bytes keep their sequence")

        // The 206 and the first body bytes after the resume point, in one segment: taken, and the
        // head acknowledged, but not spliced yet — the client may hold what the primary sent up
        // to 90,000, and an ACK of it would be past what the backup has sent.
        let head206 = Array(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 20000\r\nContent-Range: bytes 80000-99999/100000\r\nETag: \"v1-186a0\"\r\n\r\n"
                .utf8)
        let first = head206 + Self.rangeBody[80_000..<81_000]
        let (verdict, _) = try deliver(
            fromClient: false, seq: backupISN &+ 1, ack: requestEnd, flags: [.ack, .psh], payload: first, window: 2000)
        XCTAssertEqual(verdict, .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
        let bodyStart = backupISN &+ 1 &+ UInt32(head206.count)
        XCTAssertEqual(try sink.takeGuest().last?.ack, bodyStart, "the 206 head is acknowledged for the client")

        // Past the end of what the primary had sent: spliced, the segment passes translated, its
        // body bytes where the client expects them.
        let (next, more) = try deliver(
            fromClient: false, seq: bodyStart &+ 1000, ack: requestEnd, flags: [.ack, .psh],
            payload: Array(Self.rangeBody[81_000..<91_000]), window: 2000)
        XCTAssertEqual(next, .forward)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        let resumePoint = primaryISN &+ 1 &+ UInt32(head.count + Self.resumeAt)
        XCTAssertEqual(more.seq, resumePoint &+ 1000)
        XCTAssertTrue(more.checksumValid)

        let report = wrapper.splicer.latestReport
        XCTAssertEqual(report.spliced, 1)
        XCTAssertEqual(report.rangeResumed, 1)
        XCTAssertEqual(report.connectionTimings.first?.resumedAt, UInt64(Self.resumeAt))
        XCTAssertEqual(
            report.connectionTimings.first?.regeneratedBytes, UInt64(head206.count + 10_000),
            "the 206 head and the 10,000 body bytes the primary had sent past the resume point")
        XCTAssertEqual(wrapper.splicer.replayTotals.rangeResumed, 1)
    }

    /// A daemon restarted mid-download still resumes the open response with a range: the
    /// response's head was kept beside the log (`ResponseHeads`), not only in the dead daemon's
    /// memory. Without that file the restarted daemon regenerates, as before.
    func testARestartedDaemonResumesAnOpenResponseWithARange() throws {
        let heads = path + "-heads"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: heads) }
        wrapper = SouthSide(log: log, service: server, responseHeadsPath: heads)
        _ = try playRangePrimary()
        wrapper = SouthSide(log: log, service: server, responseHeadsPath: heads)  // the restart
        let shift = UInt32(rewrittenRequest.count - request.count)
        let injected = try XCTUnwrap(try openRangeReplay(shift: shift).last)
        XCTAssertEqual(
            String(decoding: injected.payload, as: UTF8.self), String(decoding: rewrittenRequest, as: UTF8.self))
    }

    /// The first daemon logged the primary's bytes up to 90,000 of the body and was killed with
    /// the next segment read and not logged. The primary carries on after it: those bytes wait
    /// (a client holding them would be past the log's checksum for good, and a replay would
    /// resume behind it and stall) until the guest retransmits the hole, then pass in order.
    func testASegmentAfterBytesTheRelayNeverSawWaitsForThem() throws {
        let heads = path + "-heads"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: heads) }
        wrapper = SouthSide(log: log, service: server, responseHeadsPath: heads)
        let (slot, head) = try playRangePrimary()
        wrapper = SouthSide(log: log, service: server, responseHeadsPath: heads)  // the restart
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        func primary(body from: Int, to end: Int, fin: Bool = false) throws -> SouthSide.Verdict {
            try deliver(
                fromClient: false, seq: primaryISN &+ 1 &+ UInt32(head.count + from), ack: requestEnd,
                flags: fin ? [.ack, .fin] : [.ack, .psh], payload: Array(Self.rangeBody[from..<end]), releasing: fin
            ).verdict
        }
        XCTAssertEqual(try primary(body: 91_000, to: 93_000), .drop, "after a hole: it waits")
        XCTAssertEqual(try primary(body: 93_000, to: 93_000, fin: true), .drop, "a FIN after it too, once unfenced")
        XCTAssertEqual(wrapper.counters.serverPastAHole, 2)
        XCTAssertEqual(log.current(slot).serverStream.byteCount, UInt64(head.count + 90_000))
        XCTAssertEqual(try primary(body: 90_000, to: 91_000), .forward, "the hole, retransmitted")
        XCTAssertEqual(try primary(body: 90_500, to: 95_000), .forward, "then the rest, again")
        XCTAssertEqual(log.current(slot).serverStream.byteCount, UInt64(head.count + 95_000))
        XCTAssertEqual(
            try deliver(
                fromClient: true, seq: requestEnd, ack: primaryISN &+ 1 &+ UInt32(head.count + 95_000), flags: .ack
            ).verdict, .forward)
        XCTAssertEqual(
            log.current(slot).serverAckedOffset, UInt64(head.count + 95_000), "the client is where the log is")
    }

    func testARestartedDaemonWithoutTheHeadsRegenerates() throws {
        _ = try playRangePrimary()
        wrapper = SouthSide(log: log, service: server)
        wrapper.splicer.begin(now: start, sink: sink)
        let syn = try XCTUnwrap(try sink.takeGuest().first)
        XCTAssertEqual(syn.seq, clientISN, "no range: the request goes as it was")
    }

    /// A backup that ignores the range and sends the whole representation again (a `200`): its
    /// bytes are regenerated and checked as without a range, and the connection splices.
    func testAWhole200AnswerToTheRangeIsCheckedAndSplices() throws {
        let (slot, head) = try playRangePrimary()
        let shift = UInt32(rewrittenRequest.count - request.count)
        _ = try openRangeReplay(shift: shift)
        let whole = head + Self.rangeBody[..<90_000]
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        for offset in stride(from: 0, to: whole.count, by: 1400) {
            XCTAssertEqual(wrapper.splicer.phase(of: slot), .catchingUp)
            _ = try deliver(
                fromClient: false, seq: backupISN &+ 1 &+ UInt32(offset), ack: requestEnd, flags: [.ack, .psh],
                payload: Array(whole[offset..<min(offset + 1400, whole.count)]), window: 2000)
        }
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .spliced)
        XCTAssertEqual(wrapper.splicer.latestReport.rangeResumed, 0)
        XCTAssertNil(wrapper.splicer.latestReport.connectionTimings.first?.resumedAt)
    }

    /// A `206` of another representation (its ETag changed) is never spliced: the connection is
    /// reset at once, on both sides.
    func testA206OfAnotherRepresentationIsNeverSpliced() throws {
        let (slot, _) = try playRangePrimary()
        let shift = UInt32(rewrittenRequest.count - request.count)
        _ = try openRangeReplay(shift: shift)
        let head206 = Array(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 20000\r\nContent-Range: bytes 80000-99999/100000\r\nETag: \"v2-186a0\"\r\n\r\n"
                .utf8)
        let requestEnd = clientISN &+ 1 &+ UInt32(request.count)
        let (verdict, _) = try deliver(
            fromClient: false, seq: backupISN &+ 1, ack: requestEnd, flags: [.ack, .psh],
            payload: head206 + Self.rangeBody[80_000..<81_000], window: 2000)
        XCTAssertEqual(verdict, .drop)
        XCTAssertEqual(wrapper.splicer.phase(of: slot), .idle)
        XCTAssertNil(log.record(slot), "the record is closed")
        let report = wrapper.splicer.latestReport
        XCTAssertEqual(report.reset, 1)
        XCTAssertEqual(report.rangeResumed, 0)
        XCTAssertTrue(report.resets.first?.contains("ETag differs") ?? false, "\(report.resets)")
        XCTAssertEqual(try sink.takeClients().first?.flags, [.rst, .ack])
    }

    /// A weak entity tag is no validator for a range (RFC 9110 §13.1.5): the response regenerates.
    func testAWeakETagIsNotResumed() throws {
        _ = try playRangePrimary(etag: "W/\"v1-186a0\"")
        wrapper.splicer.begin(now: start, sink: sink)
        XCTAssertEqual(try XCTUnwrap(try sink.takeGuest().first).seq, clientISN, "no range: the plain fake SYN")
    }
}

// MARK: Depth

extension SplicerTests {
    /// A replay 2 GiB or more into a response: what the replay acknowledges for the client is
    /// what it has checked (here nothing yet), never the client's ACK gigabytes ahead, which
    /// modular sequence comparison puts *behind* past 2 GiB. Acknowledged, the new guest (still
    /// in SYN-RECEIVED) answered the fake handshake with a RST.
    func testTheReplayNeverAcknowledgesPastWhatItCheckedAtAnyDepth() throws {
        let slot = try playPrimary()
        for depth: UInt64 in [3 << 30, (1 << 31) + 1, 5 << 31, 9 << 30] {
            var record = log.current(slot)
            let end = record.serverSequence(atOffset: depth)
            record.serverStream = StreamChecksum(crc: 0, byteCount: depth, endSequence: end)
            record.serverAckedByClient = end &- 65_536
            var splice = Splicer.Splice()
            splice.regenerated = record.serverSequence(atOffset: 0)
            splice.regeneratedOffset = 0
            XCTAssertEqual(
                splice.acknowledgeable(record), splice.regenerated, "\(depth >> 20) MiB deep: nothing checked yet")
            splice.regeneratedOffset = depth - 65_536 + 10
            splice.regenerated = record.serverSequence(atOffset: splice.regeneratedOffset)
            XCTAssertEqual(
                splice.acknowledgeable(record), record.serverAckedByClient, "checked past the client's ACK: up to it")
        }
    }
}
