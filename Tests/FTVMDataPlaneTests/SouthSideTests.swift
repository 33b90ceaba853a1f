import FTVMLog
import FTVMWire
import Foundation
import XCTest

@testable import FTVMDataPlane

/// The south-side wrapper on frames built by hand: what it logs, what it lets through, and when
/// it frees a record. Output commit is the point: no client byte passes unless it is logged.
final class SouthSideTests: XCTestCase {
    private var path = ""
    private var log: ConnectionLog!
    private var wrapper: SouthSide!
    private var sink: DiscardingSink!
    private let client = IPv4Address(10, 77, 0, 1)
    private let server = IPv4Address(10, 77, 0, 2)
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    private let clientISN: UInt32 = 0xFFFF_FF00  // wraps during the test
    private let serverISN: UInt32 = 7000

    override func setUpWithError() throws {
        path = "/dev/shm/ftvm-southside-test-\(UUID().uuidString)"
        log = try ConnectionLog.create(path: path, slots: 8, chunks: 64, chunkSize: 2048)
        wrapper = SouthSide(log: log, service: server)
        sink = DiscardingSink()
    }

    override func tearDown() {
        log = nil
        wrapper = nil
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { buffer.deallocate() }

    private func frame(
        fromClient: Bool, seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8] = [], port: UInt16 = 40000
    )
        throws -> UnsafeMutableRawBufferPointer
    {
        let spec = TCPFrameSpec(
            sourceMAC: MACAddress(2, 0, 0, 0, 0, 1), destinationMAC: MACAddress(0x52, 0x54, 0, 0x77, 0, 2),
            source: fromClient ? client : server, destination: fromClient ? server : client,
            sourcePort: fromClient ? port : 80, destinationPort: fromClient ? 80 : port,
            sequenceNumber: SequenceNumber(seq), acknowledgmentNumber: SequenceNumber(ack), flags: flags, window: 65535,
            options: flags.contains(.syn)
                ? TCPOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true, timestamps: nil)
                : TCPOptions())
        let length = try payload.withUnsafeBytes { bytes throws(WireError) in
            try FrameBuilder.tcp(spec, payload: bytes, into: buffer)
        }
        return UnsafeMutableRawBufferPointer(rebasing: buffer[..<length])
    }

    private func handshake() throws {
        XCTAssertEqual(
            wrapper.fromClient(try frame(fromClient: true, seq: clientISN, ack: 0, flags: [.syn]), now: 0, sink: sink),
            .forward)
        _ = wrapper.fromGuest(
            try frame(fromClient: false, seq: serverISN, ack: clientISN &+ 1, flags: [.syn, .ack]), now: 0, sink: sink,
            releasing: true)
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: clientISN &+ 1, ack: serverISN + 1, flags: [.ack]), now: 0, sink: sink),
            .forward)
    }

    func testHandshakeIsRecordedWithBothSidesOptions() throws {
        try handshake()
        let record = try XCTUnwrap(log.records().first)
        XCTAssertEqual(record.clientISN, clientISN)
        XCTAssertEqual(record.serverISN, serverISN)
        XCTAssertEqual(
            record.clientOptions,
            SYNOptions(maximumSegmentSize: 1460, windowScale: 7, sackPermitted: true, timestamps: false))
    }

    /// A client's TSO super-frame (an upload's 60000 bytes in one frame, its checksum partial, as
    /// the clients' tap hands it over with offloads on) is logged whole before it passes, and its
    /// checksum field is not touched.
    func testASuperFrameIsLoggedWholeAndItsPartialChecksumLeftAlone() throws {
        try handshake()
        let body = (0..<60000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let jumbo = try frame(
            fromClient: true, seq: clientISN &+ 1, ack: serverISN + 1, flags: [.ack, .psh], payload: body)
        let seed = InternetChecksum.tcpPseudoHeaderSum(source: client, destination: server, tcpLength: jumbo.count - 34)
        jumbo[50] = UInt8(seed >> 8)
        jumbo[51] = UInt8(seed & 0xFF)
        let before = Array(jumbo)
        XCTAssertEqual(wrapper.fromClient(jumbo, partialChecksum: true, now: 0, sink: sink), .forward)
        XCTAssertEqual(Array(jumbo), before, "nothing rewritten")
        let slot = try XCTUnwrap(log.lookup(try XCTUnwrap(log.records().first).key))
        XCTAssertEqual(log.clientBytes(slot), body)
        XCTAssertEqual(wrapper.counters.notLogged, 0)
    }

    func testClientBytesAreLoggedBeforeTheyPassAndGapsAreHeldBack() throws {
        try handshake()
        let first = Array("GET /bytes/10 HTTP/1.1\r\n".utf8)
        let second = Array("Host: x\r\n\r\n".utf8)
        let secondSeq = clientISN &+ 1 &+ UInt32(first.count)
        // The second segment arrives first: it cannot be logged in order, so it must not pass.
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: secondSeq, ack: serverISN + 1, flags: [.ack, .psh], payload: second),
                now: 0, sink: sink), .drop)
        XCTAssertEqual(wrapper.counters.notLogged, 1)
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(
                    fromClient: true, seq: clientISN &+ 1, ack: serverISN + 1, flags: [.ack, .psh], payload: first),
                now: 0, sink: sink), .forward)
        // A retransmission of logged bytes passes and logs nothing twice.
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(
                    fromClient: true, seq: clientISN &+ 1, ack: serverISN + 1, flags: [.ack, .psh], payload: first),
                now: 0, sink: sink), .forward)
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: secondSeq, ack: serverISN + 1, flags: [.ack, .psh], payload: second),
                now: 0, sink: sink), .forward)
        let slot = try XCTUnwrap(log.records().first?.slot)
        XCTAssertEqual(log.clientBytes(slot), first + second, "exactly the client's stream, in order, once")
    }

    func testServerProgressAndClientAcks() throws {
        try handshake()
        let response = [UInt8](repeating: 0x41, count: 1000)
        _ = wrapper.fromGuest(
            try frame(
                fromClient: false, seq: serverISN + 1, ack: clientISN &+ 1, flags: [.ack, .psh], payload: response),
            now: 0, sink: sink, releasing: true)
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: clientISN &+ 1, ack: serverISN + 1 + 600, flags: [.ack]), now: 0,
                sink: sink), .forward)
        let record = try XCTUnwrap(log.records().first)
        XCTAssertEqual(record.serverSendMax, serverISN + 1 + 1000)
        XCTAssertEqual(record.serverAckedByClient, serverISN + 1 + 600)
        let status = ConnectionStatus(record, clientBytes: log.clientBytes(record.slot))
        XCTAssertEqual(status.serverBytesSent, 1000)
        XCTAssertEqual(status.serverBytesAcked, 600)
    }

    func testRecordIsFreedAfterTheLastAckOfAServerClose() throws {
        try handshake()
        _ = wrapper.fromGuest(
            try frame(fromClient: false, seq: serverISN + 1, ack: clientISN &+ 1, flags: [.ack, .fin]), now: 0,
            sink: sink, releasing: true)
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: clientISN &+ 1, ack: serverISN + 2, flags: [.ack, .fin]), now: 0,
                sink: sink), .forward)
        XCTAssertEqual(log.records().count, 0, "both FINs seen and the server's acknowledged")
    }

    func testRecordIsFreedWhenTheServerAcknowledgesTheClientsClose() throws {
        try handshake()
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: clientISN &+ 1, ack: serverISN + 1, flags: [.ack, .fin]), now: 0,
                sink: sink), .forward)
        _ = wrapper.fromGuest(
            try frame(fromClient: false, seq: serverISN + 1, ack: clientISN &+ 2, flags: [.ack, .fin]), now: 0,
            sink: sink, releasing: true)
        XCTAssertEqual(log.records().count, 0)
    }

    func testResetFreesTheRecordAtOnce() throws {
        try handshake()
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: clientISN &+ 1, ack: 0, flags: [.rst]), now: 0, sink: sink), .forward)
        XCTAssertEqual(log.records().count, 0)
    }

    /// No free slot costs the connection its protection, never its service: it passes untracked.
    func testAFullLogAdmitsNewConnectionsUnlogged() throws {
        for port in 0..<8 {
            XCTAssertEqual(
                wrapper.fromClient(
                    try frame(fromClient: true, seq: 1, ack: 0, flags: [.syn], port: 41000 + UInt16(port)), now: 0,
                    sink: sink), .forward)
        }
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: 1, ack: 0, flags: [.syn], port: 42000), now: 0, sink: sink), .forward)
        XCTAssertEqual(wrapper.counters.admittedUnlogged, 1)
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: 2, ack: 1, flags: [.ack], payload: [1, 2], port: 42000), now: 0,
                sink: sink), .forward)
        XCTAssertEqual(log.usage.slotsUsed, 8)
    }

    func testTheCloseFenceHoldsFINAndRSTButDataWithAFINCanGoWithoutIt() throws {
        try handshake()
        let fin = try frame(
            fromClient: false, seq: serverISN + 1, ack: clientISN &+ 1, flags: [.ack, .fin], payload: [7, 7, 7])
        XCTAssertEqual(wrapper.fromGuest(fin, now: 0, sink: sink), .fence)
        XCTAssertTrue(wrapper.withoutFIN(fin))
        guard case .ipv4TCP(let stripped) = FrameClass.classify(fin) else { return XCTFail("not TCP") }
        XCTAssertEqual(stripped.flags, [.ack])
        XCTAssertTrue(stripped.isChecksumValid)
        XCTAssertEqual(wrapper.fromGuest(fin, now: 0, sink: sink), .forward, "without its FIN the data passes")
        XCTAssertEqual(log.records().first?.serverSendMax, serverISN + 4)
        XCTAssertEqual(log.records().first?.serverFINSent, false)
        let reset = try frame(
            fromClient: false, seq: serverISN + 4, ack: clientISN &+ 1, flags: [.rst, .ack], payload: [1])
        XCTAssertFalse(wrapper.withoutFIN(reset), "a RST is never split")
        XCTAssertEqual(wrapper.fromGuest(reset, now: 0, sink: sink), .fence)
    }

    func testOtherTrafficPassesUntouched() throws {
        // A segment for another address, and an unlogged connection's segment, pass and log nothing.
        let spec = TCPFrameSpec(
            sourceMAC: MACAddress(2, 0, 0, 0, 0, 1), destinationMAC: MACAddress(2, 0, 0, 0, 0, 2),
            source: client, destination: IPv4Address(10, 77, 0, 9), sourcePort: 1, destinationPort: 2,
            sequenceNumber: SequenceNumber(5), acknowledgmentNumber: SequenceNumber(0), flags: [.syn], window: 100)
        let length = try FrameBuilder.tcp(spec, into: buffer)
        XCTAssertEqual(
            wrapper.fromClient(UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]), now: 0, sink: sink), .forward
        )
        XCTAssertEqual(
            wrapper.fromClient(
                try frame(fromClient: true, seq: 9, ack: 9, flags: [.ack], payload: [1, 2, 3]), now: 0, sink: sink),
            .forward)
        XCTAssertEqual(log.records().count, 0)
        XCTAssertEqual(wrapper.counters.untracked, 1)
        var garbage = [UInt8](repeating: 0x45, count: 30)
        garbage.withUnsafeMutableBytes { XCTAssertEqual(wrapper.fromClient($0, now: 0, sink: sink), .forward) }
    }
}
