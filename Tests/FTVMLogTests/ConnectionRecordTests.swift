import FTVMWire
import XCTest

@testable import FTVMLog

/// Where the client's acknowledgments stand as a stream offset, at any depth: sequence numbers
/// wrap every 4 GiB and compare only within 2 GiB, so a replay 2 GiB into a response must not
/// compare them (a 2 GiB-deep download was reset by a new guest for it).
final class ConnectionRecordTests: XCTestCase {
    private let serverISN: UInt32 = 0xF000_0000

    /// A record whose server stream has `covered` bytes checksummed and whose client
    /// acknowledged all but `unacknowledged` of them (a negative count: past the end).
    private func record(covered: UInt64, unacknowledged: Int32) -> ConnectionRecord {
        let end = serverISN &+ 1 &+ UInt32(truncatingIfNeeded: covered)
        return ConnectionRecord(
            slot: Slot(index: 0, serial: 1),
            key: FlowKey(clientAddress: 0x0A4D_0001, clientPort: 40000, serverAddress: 0x0A4D_0002, serverPort: 80),
            state: .open, clientISN: 7, clientOptions: SYNOptions(maximumSegmentSize: 1460), serverISN: serverISN,
            serverOptions: SYNOptions(maximumSegmentSize: 1460), clientBytesLogged: 60, clientFINLogged: false,
            nextClientSequence: 68, serverAckedByClient: end &- UInt32(bitPattern: unacknowledged),
            serverSendMax: end, serverFINSent: false, clientTimestamps: nil, serverTimestamps: nil,
            serverStream: StreamChecksum(crc: 0, byteCount: covered, endSequence: end), rolledBack: false)
    }

    func testTheAcknowledgedOffsetHoldsAtAnyDepth() {
        for covered: UInt64 in [300_000, (1 << 31) - 5, 1 << 31, (1 << 31) + 262_144, (1 << 32) + 10, 5 << 32] {
            XCTAssertEqual(record(covered: covered, unacknowledged: 0).serverAckedOffset, covered, "\(covered)")
            XCTAssertEqual(
                record(covered: covered, unacknowledged: 262_144).serverAckedOffset, covered - 262_144, "\(covered)")
        }
    }

    func testAnAcknowledgmentPastTheChecksummedEndCountsAsTheEnd() {
        XCTAssertEqual(record(covered: 3000, unacknowledged: -1).serverAckedOffset, 3000, "a FIN's")
        XCTAssertEqual(record(covered: 100, unacknowledged: 4000).serverAckedOffset, 0, "never below the start")
    }
}
