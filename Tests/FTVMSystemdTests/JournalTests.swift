import FTVMSystem
import Foundation
import Logging
import XCTest

@testable import FTVMSystemd

/// journald's native protocol: the bytes of an entry, and what the log handler sends.
final class JournalTests: XCTestCase {
    func testEncodingGoldenBytes() {
        let entry = JournalEntry(fields: [
            JournalEntry.Field("MESSAGE", "guest removed"),
            JournalEntry.Field("FTVM_CONSOLE", "line 1\nline 2"),
            JournalEntry.Field("FTVM_EMPTY", ""),
        ])
        var expected = Array("MESSAGE=guest removed\n".utf8)
        // Binary form: name, newline, 64-bit little-endian length (13), the value, newline.
        expected += Array("FTVM_CONSOLE\n".utf8) + [13, 0, 0, 0, 0, 0, 0, 0] + Array("line 1\nline 2\n".utf8)
        expected += Array("FTVM_EMPTY=\n".utf8)
        XCTAssertEqual(entry.encoded, expected)
    }

    func testFieldNames() {
        XCTAssertEqual(JournalEntry.fieldName("pair", prefix: "FTVM_"), "FTVM_PAIR")
        XCTAssertEqual(JournalEntry.fieldName("error-code", prefix: "FTVM_"), "FTVM_ERROR_CODE")
        XCTAssertEqual(JournalEntry.fieldName("open.slots", prefix: "FTVM_"), "FTVM_OPEN_SLOTS")
        XCTAssertEqual(JournalEntry.fieldName("élan2", prefix: "FTVM_"), "FTVM__LAN2")
        XCTAssertEqual(JournalEntry.fieldName(String(repeating: "a", count: 80), prefix: "FTVM_").count, 64)
    }

    /// A logger with the handler, pointed at a socket the test binds: the datagram decoded by
    /// the test's own reader of the protocol.
    func testHandlerSendsStructuredFields() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ftvm-journal-\(getpid()).sock").path
        let journal = try UnixDatagram(bindingTo: path)
        let handler = try JournalLogHandler(label: "ftvm.test", socketPath: path)
        var logger = Logger(label: "ftvm.test") { _ in handler }
        logger[metadataKey: "pair"] = "hcfg"
        let line = #line + 1
        logger.error("bring-up failed", metadata: ["error": "guest stopped\nlast console lines", "pair": "hcfg2"])
        let fields = try Self.decode(XCTUnwrap(try journal.receive(timeoutSeconds: 2)))
        XCTAssertEqual(fields["MESSAGE"], "bring-up failed")
        XCTAssertEqual(fields["PRIORITY"], "3")
        XCTAssertEqual(fields["SYSLOG_IDENTIFIER"], "ftvm")
        XCTAssertEqual(fields["CODE_FILE"], "\(#fileID)")
        XCTAssertEqual(fields["CODE_LINE"], "\(line)")
        XCTAssertEqual(fields["CODE_FUNC"], #function)
        XCTAssertEqual(fields["FTVM_LOGGER"], "ftvm.test")
        XCTAssertEqual(fields["FTVM_PAIR"], "hcfg2", "the event's metadata wins over the logger's")
        XCTAssertEqual(fields["FTVM_ERROR"], "guest stopped\nlast console lines")
        XCTAssertEqual(fields.count, 9)

        logger.info("pair protected")
        let second = try Self.decode(XCTUnwrap(try journal.receive(timeoutSeconds: 2)))
        XCTAssertEqual(second["PRIORITY"], "6")
        XCTAssertEqual(second["FTVM_PAIR"], "hcfg")
        logger.debug("below the level")
        XCTAssertNil(try journal.receive(timeoutSeconds: 0.05))
    }

    func testPriorities() {
        let expected: [(Logger.Level, Int)] = [
            (.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
        ]
        for (level, priority) in expected { XCTAssertEqual(JournalLogHandler.priority(level), priority, "\(level)") }
    }

    func testJournalStreamMatchesStandardErrorOnly() {
        var info = stat()
        XCTAssertEqual(fstat(STDERR_FILENO, &info), 0)
        XCTAssertTrue(JournalStream.isStandardError(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]))
        XCTAssertFalse(
            JournalStream.isStandardError(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino + 1)"]))
        XCTAssertFalse(JournalStream.isStandardError(environment: ["JOURNAL_STREAM": "garbage"]))
        XCTAssertFalse(JournalStream.isStandardError(environment: ["INVOCATION_ID": "0123"]))
    }

    /// The protocol read back, written from the description (not from the encoder).
    static func decode(_ bytes: [UInt8]) throws -> [String: String] {
        var fields: [String: String] = [:]
        var index = 0
        while index < bytes.count {
            let end = try XCTUnwrap(bytes[index...].firstIndex { $0 == 0x0A || $0 == UInt8(ascii: "=") })
            let name = String(decoding: bytes[index..<end], as: UTF8.self)
            if bytes[end] == UInt8(ascii: "=") {
                let valueEnd = try XCTUnwrap(bytes[end...].firstIndex(of: 0x0A))
                fields[name] = String(decoding: bytes[(end + 1)..<valueEnd], as: UTF8.self)
                index = valueEnd + 1
            } else {
                let lengthBytes = bytes[(end + 1)..<(end + 9)]
                let length = lengthBytes.reversed().reduce(0) { $0 << 8 | Int($1) }
                let start = end + 9
                fields[name] = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
                XCTAssertEqual(bytes[start + length], 0x0A)
                index = start + length + 1
            }
        }
        return fields
    }
}
