import FTVMSystem
import Foundation
import XCTest

@testable import FTVMChannel

final class ChannelTests: XCTestCase {
    private var path = ""

    override func setUp() {
        path = NSTemporaryDirectory() + "ftvm-channel-test-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A formatted region starts with the documented header bytes, field by field.
    func testFormattedHeaderBytes() throws {
        _ = try Channel.open(path: path, create: true)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(bytes.count, ChannelLayout.regionSize)
        XCTAssertEqual(Array(bytes[0..<8]), Array("FTVMCHAN".utf8))  // magic
        XCTAssertEqual(Array(bytes[8..<12]), [2, 0, 0, 0])  // version 2, little-endian
        XCTAssertEqual(Array(bytes[12..<16]), [0, 0, 0x10, 0])  // size 1 MiB
        XCTAssertEqual(Array(bytes[16..<24]), [0, 0, 0, 0, 0, 0, 0, 0])  // heartbeat
    }

    func testReattachSeesWhatTheOtherSideWrote() throws {
        let host = try Channel.open(path: path, create: true)
        let guest = try Channel.open(path: path, create: false)
        XCTAssertEqual(host.agentState, .absent)
        guest.agentState = .ready
        guest.beat(guestClockNanos: 42)
        guest.beat(guestClockNanos: 43)
        guest.imageVersion = "2.0.0"
        XCTAssertEqual(host.heartbeat, 2)
        XCTAssertEqual(host.guestClockNanos, 43)
        XCTAssertEqual(host.agentState, .ready)
        XCTAssertEqual(host.imageVersion, "2.0.0")
    }

    func testServicesAreReportedPerSlot() throws {
        let host = try Channel.open(path: path, create: true)
        let guest = try Channel.open(path: path, create: false)
        XCTAssertEqual(host.services, [])
        guest.declareService(0, name: "demo", port: 80)
        guest.declareService(1, name: "static", port: 8080)
        guest.serviceStarted(0, pid: 100, isRestart: false)
        guest.serviceExited(0, status: -9)
        guest.serviceStarted(0, pid: 101, isRestart: true)
        guest.serviceStarted(1, pid: 102, isRestart: false)
        XCTAssertEqual(
            host.services,
            [
                ServiceReport(name: "demo", port: 80, state: .running, pid: 101, restarts: 1, lastExit: -9),
                ServiceReport(name: "static", port: 8080, state: .running, pid: 102, restarts: 0, lastExit: 0),
            ])
    }

    func testCommandMailboxRoundTrip() throws {
        let host = try Channel.open(path: path, create: true)
        let guest = try Channel.open(path: path, create: false)
        var handled = guest.lastPostedSequence
        XCTAssertNil(guest.pendingCommand(after: handled))
        let sequence = host.post(.serviceCrash, argument: 1, text: "crash it")
        let command = try XCTUnwrap(guest.pendingCommand(after: handled))
        XCTAssertEqual(
            command,
            PostedCommand(sequence: sequence, command: .serviceCrash, rawCode: 4, argument: 1, text: "crash it"))
        handled = command.sequence
        XCTAssertNil(guest.pendingCommand(after: handled), "a command is delivered once")
        guest.reply(to: sequence, status: 0, text: "signalled")
        XCTAssertEqual(host.lastReply, CommandReply(sequence: sequence, status: 0, text: "signalled"))
    }

    func testTextFieldsTruncateOnCharacterBoundaries() throws {
        let channel = try Channel.open(path: path, create: true)
        channel.imageVersion = String(repeating: "é", count: 40)  // 80 bytes of UTF-8
        XCTAssertEqual(channel.imageVersion, String(repeating: "é", count: 15), "31 bytes fit: 15 whole characters")
    }

    // MARK: Corrupt regions are refused

    func testBadMagicIsRefused() throws {
        _ = try Channel.open(path: path, create: true)
        try patch(offset: 0, bytes: Array("NOTFTVM!".utf8))
        XCTAssertThrowsError(try Channel.open(path: path, create: false)) { error in
            guard case ChannelError.badMagic = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("ftvm down"), "the message says what to do")
        }
    }

    func testUnknownVersionIsRefused() throws {
        _ = try Channel.open(path: path, create: true)
        try patch(offset: 8, bytes: [9, 0, 0, 0])
        XCTAssertThrowsError(try Channel.open(path: path, create: false)) { error in
            XCTAssertEqual(error as? ChannelError, .unsupportedVersion(path: path, found: 9))
        }
    }

    func testTruncatedRegionIsRefused() throws {
        _ = try Channel.open(path: path, create: true)
        XCTAssertEqual(truncate(path, 65536), 0)
        XCTAssertThrowsError(try Channel.open(path: path, create: false)) { error in
            XCTAssertEqual(
                error as? ChannelError, .sizeMismatch(path: path, header: ChannelLayout.regionSize, actual: 65536))
        }
    }

    /// A region cut inside the trim ring is too small for the layout, whatever its header says.
    func testRegionWithoutRoomForTheTrimRingIsRefused() throws {
        _ = try Channel.open(path: path, create: true)
        XCTAssertEqual(ChannelLayout.minimumSize, 4160 + 1024 * 32)
        XCTAssertEqual(truncate(path, 4096), 0)
        XCTAssertThrowsError(try Channel.open(path: path, create: false)) { error in
            XCTAssertEqual(error as? ChannelError, .tooSmall(path: path, size: 4096))
        }
    }

    func testTinyAndEmptyFilesAreRefused() throws {
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 0, count: 100))
        XCTAssertThrowsError(try Channel.open(path: path, create: false)) { error in
            XCTAssertEqual(error as? ChannelError, .tooSmall(path: path, size: 100))
        }
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        XCTAssertThrowsError(try Channel.open(path: path, create: false)) { error in
            guard case ChannelError.cannotMap = error else { return XCTFail("\(error)") }
        }
    }

    func testMissingFileIsAClearError() {
        XCTAssertThrowsError(try Channel.open(path: path, create: false)) { error in
            XCTAssertTrue("\(error)".contains(path))
        }
    }

    private func patch(offset: UInt64, bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: bytes)
        try handle.close()
    }
}
