import FTVMDemoKit
import XCTest

/// Drives a `CommandSession` like the event loop does: input offered `piece` bytes at a time,
/// output taken `chunk` bytes at a time with only `accept` of each committed. Collects the
/// boundaries the session reports, and checks each is reported only once its reply is wholly
/// committed.
struct CommandDriver {
    var session: CommandSession
    var piece = Int.max
    var chunk = 4096
    var accept = Int.max
    private(set) var boundaries: [CommandSession.Boundary] = []
    /// Input fed and output taken by earlier `run`s, so runs can continue one connection.
    private var fed = 0
    private var taken = 0

    init(version: [UInt8]? = Array(" 3.1.4\n".utf8)) {
        session = CommandSession(readVersion: { version })
    }

    /// Returns what the session wrote for `input`; stops when it closes or input runs out.
    mutating func run(_ input: [UInt8]) -> [UInt8] {
        var inbox = input[...]
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: chunk)
        defer {
            fed += input.count - inbox.count
            taken += output.count
        }
        while true {
            while session.hasOutput {
                let count = buffer.withUnsafeMutableBytes { session.peekOutput(into: $0) }
                let accepted = min(count, accept)
                output += buffer[0..<accepted]
                if let boundary = session.advanceOutput(by: accepted) {
                    XCTAssertFalse(session.hasOutput, "a boundary before the reply's last byte")
                    XCTAssertEqual(boundary.serverOffset, UInt64(taken + output.count))
                    XCTAssertEqual(boundary.clientOffset, UInt64(fed + input.count - inbox.count))
                    boundaries.append(boundary)
                }
                XCTAssertEqual(session.bytesWritten, UInt64(taken + output.count))
            }
            if session.isClosing || inbox.isEmpty { return output }
            let offered = inbox.prefix(piece)
            let used = offered.withUnsafeBytes { session.receive($0) }
            XCTAssertTrue(used > 0 || session.hasOutput, "session stalled")
            inbox = inbox.dropFirst(used)
            XCTAssertEqual(session.bytesConsumed, UInt64(fed + input.count - inbox.count))
        }
    }
}

final class CommandSessionTests: XCTestCase {
    /// A script of commands and their replies, one per line.
    private let script: [(command: String, reply: [UInt8])] = [
        ("PING\n", ascii("PONG\n")),
        ("ECHO hello world\r\n", ascii("hello world\n")),
        ("ECHO\n", ascii("\n")),
        ("ECHO  two  spaces \n", ascii(" two  spaces \n")),
        ("BYTES 13 42\n", ascii("DATA 13\n") + bytes("956eeb2f2632d7bd03f166b233")),
        ("BYTES 0 7\r\n", ascii("DATA 0\n")),
        ("VERSION\n", ascii("3.1.4\n")),
        ("ping\n", ascii("ERR unknown command\n")),
        ("\n", ascii("ERR unknown command\n")),
        ("\r\n", ascii("ERR unknown command\n")),
        ("PING \n", ascii("ERR unknown command\n")),
        ("BYTES\n", ascii("ERR usage: BYTES N SEED\n")),
        ("BYTES 5\n", ascii("ERR usage: BYTES N SEED\n")),
        ("BYTES 5 1 2\n", ascii("ERR usage: BYTES N SEED\n")),
        ("BYTES -5 1\n", ascii("ERR usage: BYTES N SEED\n")),
        ("BYTES 5  1\n", ascii("ERR usage: BYTES N SEED\n")),
        ("BYTES 18446744073709551616 1\n", ascii("ERR usage: BYTES N SEED\n")),
        ("BYTESX 1 1\n", ascii("ERR unknown command\n")),
        ("BYTES 9001 18446744073709551615\n", ascii("DATA 9001\n") + referenceSplitMix(seed: .max, count: 9001)),
        ("PING\n", ascii("PONG\n")),
    ]

    private var scriptInput: [UInt8] { script.flatMap { ascii($0.command) } }
    private var scriptOutput: [UInt8] { script.flatMap(\.reply) }

    /// Where each command's line ends (C) and each reply ends (S), counted independently.
    private var scriptBoundaries: [CommandSession.Boundary] {
        var client: UInt64 = 0
        var server: UInt64 = 0
        return script.map { step in
            client += UInt64(step.command.utf8.count)
            server += UInt64(step.reply.count)
            return CommandSession.Boundary(clientOffset: client, serverOffset: server)
        }
    }

    func testScriptInOnePiece() {
        var driver = CommandDriver()
        XCTAssertEqual(driver.run(scriptInput), scriptOutput)
        XCTAssertEqual(driver.boundaries, scriptBoundaries)
        XCTAssertFalse(driver.session.isClosing)
    }

    /// The input split in two at every position, and byte by byte; the output taken in every
    /// awkward way a socket can take it. Replies and boundaries never change.
    func testEverySplitOfTheInput() {
        let input = scriptInput
        for split in 0...input.count {
            var driver = CommandDriver()
            var output: [UInt8] = []
            // Two receives: the first `split` bytes, then the rest (pipelined commands in both).
            output += driver.run(Array(input[..<split]))
            output += driver.run(Array(input[split...]))
            XCTAssertEqual(output, scriptOutput, "split at \(split)")
            XCTAssertEqual(driver.boundaries, scriptBoundaries, "split at \(split)")
        }
        for (piece, chunk, accept) in [(1, 4096, 4096), (7, 100, 33), (1000, 65536, 1), (5, 9, 8), (3, 1, 1)] {
            var driver = CommandDriver()
            driver.piece = piece
            driver.chunk = chunk
            driver.accept = accept
            XCTAssertEqual(driver.run(input), scriptOutput, "piece \(piece) chunk \(chunk) accept \(accept)")
            XCTAssertEqual(driver.boundaries, scriptBoundaries, "piece \(piece) chunk \(chunk) accept \(accept)")
        }
    }

    /// While a reply is pending nothing more is consumed: the next command waits its turn.
    func testPipelinedCommandsWaitForTheReply() {
        var session = CommandSession(readVersion: { nil })
        let input = ascii("BYTES 100000 1\nPING\nPING\n")
        XCTAssertEqual(input.withUnsafeBytes { session.receive($0) }, 15, "through the first LF only")
        XCTAssertFalse(session.acceptsInput)
        XCTAssertEqual(input[15...].withUnsafeBytes { session.receive($0) }, 0)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var boundaries: [CommandSession.Boundary] = []
        var written = 0
        while session.hasOutput {
            let count = buffer.withUnsafeMutableBytes { session.peekOutput(into: $0) }
            // Commit in two halves: the first never completes the reply.
            XCTAssertNil(session.advanceOutput(by: count / 2))
            if let boundary = session.advanceOutput(by: count - count / 2) { boundaries.append(boundary) }
            written += count
        }
        XCTAssertEqual(written, "DATA 100000\n".utf8.count + 100_000)
        XCTAssertEqual(boundaries, [CommandSession.Boundary(clientOffset: 15, serverOffset: UInt64(written))])
        XCTAssertTrue(session.acceptsInput)
        XCTAssertEqual(input[15...].withUnsafeBytes { session.receive($0) }, 5)
        XCTAssertNil(session.advanceOutput(by: 0), "nothing committed, no boundary")
        XCTAssertEqual(
            session.advanceOutput(by: 5), CommandSession.Boundary(clientOffset: 20, serverOffset: UInt64(written + 5)))
        XCTAssertNil(session.advanceOutput(by: 5), "a boundary is reported once")
    }

    func testVersionIsReadPerCommand() {
        final class File: @unchecked Sendable { var contents: [UInt8]? = Array("1.0\n".utf8) }
        let file = File()
        var session = CommandSession(readVersion: { file.contents })
        func ask() -> String {
            let input = ascii("VERSION\n")
            XCTAssertEqual(input.withUnsafeBytes { session.receive($0) }, input.count)
            var buffer = [UInt8](repeating: 0, count: 100)
            let count = buffer.withUnsafeMutableBytes { session.peekOutput(into: $0) }
            XCTAssertNotNil(session.advanceOutput(by: count))
            return String(decoding: buffer[0..<count], as: UTF8.self)
        }
        XCTAssertEqual(ask(), "1.0\n")
        file.contents = Array("\t2.0 \r\n".utf8)
        XCTAssertEqual(ask(), "2.0\n")
        file.contents = nil
        XCTAssertEqual(ask(), "ERR version file unreadable\n")
    }

    // MARK: Long lines

    func testLongestLineIsAccepted() {
        let text = String(repeating: "x", count: CommandSession.lineLimit - 5)
        for ending in ["\n", "\r\n"] {
            var driver = CommandDriver()
            driver.piece = 1000
            XCTAssertEqual(
                driver.run(ascii("ECHO \(text)\(ending)PING\n")), ascii(text + "\nPONG\n"), ending.debugDescription)
            XCTAssertEqual(driver.boundaries.count, 2)
        }
        var driver = CommandDriver()
        XCTAssertEqual(
            driver.run(ascii(String(repeating: "y", count: CommandSession.lineLimit) + "\n")),
            ascii("ERR unknown command\n"))
    }

    func testLongerLineIsRefusedAndCloses() {
        let limit = CommandSession.lineLimit
        let cases = [
            String(repeating: "x", count: limit + 1) + "\n",
            String(repeating: "x", count: limit + 1) + "\r\n",
            String(repeating: "x", count: limit) + "\r\r\n",
            String(repeating: "x", count: limit + 2),  // no LF yet: refused as soon as it cannot fit
            "PING\n" + String(repeating: "x", count: 100_000) + "\nPING\n",
        ]
        for (index, input) in cases.enumerated() {
            for piece in [1, 7, 4096, Int.max] {
                var driver = CommandDriver()
                driver.piece = piece
                let output = driver.run(ascii(input))
                let expected = (input.hasPrefix("PING") ? "PONG\n" : "") + "ERR line too long\n"
                XCTAssertEqual(String(decoding: output, as: UTF8.self), expected, "case \(index) piece \(piece)")
                XCTAssertTrue(driver.session.isClosing, "case \(index) piece \(piece)")
                XCTAssertFalse(driver.session.acceptsInput)
                XCTAssertEqual(driver.boundaries.count, input.hasPrefix("PING") ? 1 : 0, "no trim for a refused line")
                XCTAssertLessThanOrEqual(
                    driver.session.bytesConsumed, UInt64((input.hasPrefix("PING") ? 5 : 0) + limit + 3))
            }
        }
        // A line of limit + 1 bytes without an LF is refused when the byte after it arrives.
        var session = CommandSession(readVersion: { nil })
        let long = ascii(String(repeating: "x", count: limit + 1))
        XCTAssertEqual(long.withUnsafeBytes { session.receive($0) }, limit + 1)
        XCTAssertFalse(session.hasOutput, "could still be \(limit) bytes and a CR")
        XCTAssertEqual(ascii("x").withUnsafeBytes { session.receive($0) }, 0)
        XCTAssertTrue(session.isClosing)
    }

    /// Random bytes and random splits never trap or stall; every LF-terminated line is answered.
    func testFuzzedInputIsAnsweredLineByLine() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("PINGECHOBYTESVRS 0123456789\r\n\n\n".utf8) + [0, 0xFF]
        for _ in 0..<300 {
            let input = (0..<Int.random(in: 0...400, using: &generator)).map { _ in
                alphabet.randomElement(using: &generator)!
            }
            var driver = CommandDriver()
            driver.piece = Int.random(in: 1...50, using: &generator)
            driver.accept = Int.random(in: 1...50, using: &generator)
            let output = driver.run(input)
            let lines = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count - 1
            XCTAssertEqual(driver.boundaries.count, lines)
            XCTAssertEqual(driver.boundaries.last?.serverOffset ?? 0, UInt64(output.count))
        }
    }
}
