import SeededRandom
import XCTest

@testable import FTVMCLI

/// The answers of a pipelined session, read off one stream in order however it was cut.
final class PipelinedAnswersTests: XCTestCase {
    private let bodies: [[UInt8]] = [
        Array("hello".utf8), (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }, [], Array("chunk body!  ".utf8),
    ]

    /// A Content-Length answer after an interim 100, a large one, an empty 204, and a chunked one
    /// with an extension and a trailer.
    private var stream: [UInt8] {
        var text: [UInt8] = []
        text += Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".utf8) + bodies[0]
        text += Array("HTTP/1.1 206 Partial Content\r\ncontent-length:  70000\r\nX: y\r\n\r\n".utf8) + bodies[1]
        text += Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)
        text += Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nchunk\r\n".utf8)
        text += Array("8\r\n body!  \r\n0\r\nTrailer: t\r\n\r\n".utf8)
        return text
    }

    private func read(_ stream: [UInt8], cuts: [Int]) throws -> (bodies: [[UInt8]], statuses: [Int]) {
        var answers = PipelinedAnswers()
        var read: [[UInt8]] = []
        var statuses: [Int] = []
        var start = 0
        for end in cuts + [stream.count] where end >= start {
            for event in try answers.feed(stream[start..<end]) {
                switch event {
                case .body(let index, let bytes):
                    while read.count <= index { read.append([]) }
                    read[index] += bytes
                case .complete(let index, let status):
                    while read.count <= index { read.append([]) }
                    XCTAssertEqual(index, statuses.count, "in order")
                    statuses.append(status)
                }
            }
            start = end
        }
        XCTAssertTrue(answers.isBetweenAnswers)
        return (read, statuses)
    }

    func testEveryAnswerIsReadWholeHoweverTheStreamIsCut() throws {
        let stream = self.stream
        let expected = bodies
        let whole = try read(stream, cuts: [])
        XCTAssertEqual(whole.bodies, expected)
        XCTAssertEqual(whole.statuses, [200, 206, 204, 200])
        XCTAssertEqual(try read(stream, cuts: Array(1..<stream.count)).bodies, expected, "a byte at a time")
        var random = SplitMix64(seed: 41)
        for _ in 0..<200 {
            let cuts = (0..<Int(random.next() % 12)).map { _ in Int(random.next() % UInt64(stream.count)) }.sorted()
            XCTAssertEqual(try read(stream, cuts: cuts).bodies, expected, "cut at \(cuts)")
        }
    }

    func testAnAnswerThatCannotBeFramedIsAnError() {
        for (text, failure) in [
            ("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody", "neither Content-Length nor chunked"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "Content-Length"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "after a chunk"),
            ("SSH-2.0-OpenSSH\r\n\r\n", "status line"),
            ("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "field line"),
        ] {
            var answers = PipelinedAnswers()
            XCTAssertThrowsError(try answers.feed(Array(text.utf8)), text) { error in
                XCTAssertTrue("\(error)".contains(failure), "\(text): \(error)")
            }
        }
        var answers = PipelinedAnswers()
        XCTAssertThrowsError(try answers.feed([UInt8](repeating: 65, count: PipelinedAnswers.headLimit + 1)))
    }
}
