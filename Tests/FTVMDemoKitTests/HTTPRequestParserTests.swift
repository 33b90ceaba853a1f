import FTVMDemoKit
import XCTest

/// Parser events with body bytes copied out and adjacent body pieces merged, so runs with
/// different input splits compare equal.
enum Parsed: Equatable {
    case head(HTTPRequestHead)
    case body([UInt8])
    case end
}

/// Feeds `input` cut at `cuts` (ascending offsets) and collects events until input runs out or
/// the parser throws.
func parse(
    _ input: [UInt8], cuts: [Int] = [], parser: HTTPRequestParser = HTTPRequestParser()
) -> (events: [Parsed], error: HTTPParseError?) {
    var parser = parser
    var events: [Parsed] = []
    let bounds = [0] + cuts + [input.count]
    for (start, end) in zip(bounds, bounds.dropFirst()) {
        var offset = start
        while true {
            do {
                let (event, consumed) = try input.withUnsafeBytes { all in
                    let piece = UnsafeRawBufferPointer(rebasing: all[offset..<end])
                    let result = try parser.parse(piece)
                    if case .body(let range)? = result.event {
                        let body = Array(piece[range])
                        if case .body(let previous)? = events.last {
                            events[events.count - 1] = .body(previous + body)
                        } else {
                            events.append(.body(body))
                        }
                    }
                    return result
                }
                offset += consumed
                guard let event else { break }
                if case .body = event { continue }
                events.append(event == .end ? .end : .head(try XCTUnwrap(headOf(event))))
            } catch let error as HTTPParseError {
                return (events, error)
            } catch {
                XCTFail("unexpected \(error)")
                return (events, nil)
            }
        }
        XCTAssertEqual(offset, end, "a nil event must mean all input was consumed")
    }
    return (events, nil)
}

private func headOf(_ event: HTTPRequestEvent) -> HTTPRequestHead? {
    if case .head(let head) = event { return head }
    return nil
}

func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

final class HTTPRequestParserTests: XCTestCase {
    let get = HTTPRequestHead(
        method: "GET", target: "/bytes/10?seed=3", version: .http1_1,
        headers: [HTTPHeader(name: "Host", value: "vm"), HTTPHeader(name: "X-Empty", value: "")])

    func testSimpleGet() {
        let (events, error) = parse(ascii("GET /bytes/10?seed=3 HTTP/1.1\r\nHost:  vm \t\r\nX-Empty:\r\n\r\n"))
        XCTAssertNil(error)
        XCTAssertEqual(events, [.head(get), .end])
    }

    /// Four pipelined requests exercising every framing; the parse must not depend on how the
    /// bytes are cut.
    let pipeline = ascii(
        "GET /health HTTP/1.1\r\n\r\n"
            + "POST /sha256 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            + "POST /sha256 HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n"
            + "3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "\r\nGET /version HTTP/1.0\nConnection: keep-alive\n\n")

    var pipelineEvents: [Parsed] {
        [
            .head(HTTPRequestHead(method: "GET", target: "/health", version: .http1_1)), .end,
            .head(
                HTTPRequestHead(
                    method: "POST", target: "/sha256", version: .http1_1,
                    headers: [HTTPHeader(name: "Content-Length", value: "5")])),
            .body(ascii("hello")), .end,
            .head(
                HTTPRequestHead(
                    method: "POST", target: "/sha256", version: .http1_1,
                    headers: [HTTPHeader(name: "transfer-encoding", value: "Chunked")])),
            .body(ascii("abc0123456789")), .end,
            .head(
                HTTPRequestHead(
                    method: "GET", target: "/version", version: .http1_0,
                    headers: [HTTPHeader(name: "Connection", value: "keep-alive")])),
            .end,
        ]
    }

    func testPipelineInOnePiece() {
        let (events, error) = parse(pipeline)
        XCTAssertNil(error)
        XCTAssertEqual(events, pipelineEvents)
    }

    func testPipelineSplitAtEveryPosition() {
        for cut in 0...pipeline.count {
            let (events, error) = parse(pipeline, cuts: [cut])
            XCTAssertNil(error, "cut at \(cut)")
            XCTAssertEqual(events, pipelineEvents, "cut at \(cut)")
        }
    }

    func testPipelineByteByByte() {
        let (events, error) = parse(pipeline, cuts: Array(1..<pipeline.count))
        XCTAssertNil(error)
        XCTAssertEqual(events, pipelineEvents)
    }

    func testNeverConsumesPastTheEndOfARequest() throws {
        let first = ascii("POST /sha256 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        let input = first + ascii("GET /health HTTP/1.1\r\n\r\n")
        var parser = HTTPRequestParser()
        var offset = 0
        var events: [HTTPRequestEvent] = []
        while events.last != .end {
            let (event, consumed) = try input.withUnsafeBytes {
                try parser.parse(UnsafeRawBufferPointer(rebasing: $0[offset...]))
            }
            offset += consumed
            events.append(try XCTUnwrap(event))
        }
        XCTAssertEqual(offset, first.count)
        XCTAssertEqual(events.count, 3)
    }

    func testEmptyInputYieldsNothing() throws {
        var parser = HTTPRequestParser()
        let (event, consumed) = try [UInt8]().withUnsafeBytes { try parser.parse($0) }
        XCTAssertNil(event)
        XCTAssertEqual(consumed, 0)
    }

    func testLargeContentLengthIsAccepted() {
        let (events, error) = parse(ascii("POST /sha256 HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nab"))
        XCTAssertNil(error)
        XCTAssertEqual(events.count, 2)
        XCTAssertEqual(events.last, .body(ascii("ab")))
    }

    func testIdenticalDuplicateContentLengthsAreAccepted() {
        let (events, error) = parse(ascii("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"))
        XCTAssertNil(error)
        XCTAssertEqual(events.dropFirst(), [.body(ascii("x")), .end])
    }

    // MARK: - Malformed input, one case per rule

    func assertError(_ text: String, _ expected: HTTPParseError, file: StaticString = #filePath, line: UInt = #line) {
        let (_, error) = parse(ascii(text))
        XCTAssertEqual(error, expected, text, file: file, line: line)
    }

    func assertMalformed(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        let (_, error) = parse(ascii(text))
        guard case .malformed? = error else {
            return XCTFail("\(text.debugDescription): \(String(describing: error))", file: file, line: line)
        }
    }

    func testMalformedRequestLines() {
        assertMalformed("GET /\r\n\r\n")
        assertMalformed("GET  / HTTP/1.1\r\n\r\n")
        assertMalformed("GET / HTTP/1.1 \r\n\r\n")
        assertMalformed("G(T / HTTP/1.1\r\n\r\n")
        assertMalformed("GET /a\u{1}b HTTP/1.1\r\n\r\n")
        assertMalformed("GET / HTTP/1.x\r\n\r\n")
        assertMalformed("GET / HTTP/11\r\n\r\n")
        assertMalformed("GET / http/1.1\r\n\r\n")
        assertMalformed("GET / HTTP/1.1\rX\r\n\r\n")
        assertMalformed("\u{0}\r\n\r\n")
    }

    func testMalformedHeaderLines() {
        assertMalformed("GET / HTTP/1.1\r\nNoColon\r\n\r\n")
        assertMalformed("GET / HTTP/1.1\r\nHost : x\r\n\r\n")
        assertMalformed("GET / HTTP/1.1\r\n: x\r\n\r\n")
        assertMalformed("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n")
        assertMalformed("GET / HTTP/1.1\r\nA: b\u{7F}\r\n\r\n")
        assertMalformed("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n")
    }

    func testMalformedFraming() {
        assertMalformed("POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n")
        assertMalformed("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
        assertMalformed("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n")
        assertMalformed("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n")
        assertMalformed("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        assertMalformed("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        assertMalformed("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
    }

    func testMalformedChunks() {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        assertMalformed(head + "zz\r\n")
        assertMalformed(head + "\r\n")
        assertMalformed(head + ";ext\r\n")
        assertMalformed(head + "3\r\nabcX")
        assertMalformed(head + "3\r\nabc\r\r")
        assertMalformed(head + "10000000000000000\r\n")
        assertMalformed(head + String(repeating: "0", count: 2000))
    }

    func testUnsupportedVersionAndCoding() {
        assertError("GET / HTTP/2.0\r\n\r\n", .unsupportedVersion)
        assertError("GET / HTTP/0.9\r\n\r\n", .unsupportedVersion)
        assertError("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferEncoding)
        assertError(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            .unsupportedTransferEncoding)
    }

    func testHeadLimitIsExact() {
        let text = ascii("GET / HTTP/1.1\r\nA: " + String(repeating: "b", count: 40) + "\r\n\r\n")
        let exact = HTTPRequestParser(headLimit: text.count)
        XCTAssertNil(parse(text, parser: exact).error)
        let oneShort = HTTPRequestParser(headLimit: text.count - 1)
        XCTAssertEqual(parse(text, parser: oneShort).error, .headTooLarge)
    }

    func testOversizedHeadIsRejectedWhileStillArriving() {
        // No terminator ever arrives: the limit must trip on the bytes alone.
        let header = ascii("GET / HTTP/1.1\r\nCookie: " + String(repeating: "c", count: 20_000))
        let (events, error) = parse(header, cuts: Array(stride(from: 1000, to: header.count, by: 1000)))
        XCTAssertEqual(events, [])
        XCTAssertEqual(error, .headTooLarge)
    }

    func testOversizedTrailersAreRejected() {
        let text = ascii(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + String(repeating: "t", count: 20_000))
        XCTAssertEqual(parse(text).error, .headTooLarge)
    }

    func testErrorIsSticky() throws {
        var parser = HTTPRequestParser()
        let bad = ascii("BAD\r\n\r\n")
        XCTAssertThrowsError(try bad.withUnsafeBytes { try parser.parse($0) })
        let good = ascii("GET / HTTP/1.1\r\n\r\n")
        XCTAssertThrowsError(try good.withUnsafeBytes { try parser.parse($0) }) { error in
            XCTAssertEqual(error as? HTTPParseError, .malformed("request line must have three parts"))
        }
    }

    // MARK: - Head semantics

    func head(_ version: HTTPVersion, _ headers: [(String, String)]) -> HTTPRequestHead {
        HTTPRequestHead(
            method: "GET", target: "/", version: version, headers: headers.map { HTTPHeader(name: $0, value: $1) })
    }

    func testKeepAliveRules() {
        XCTAssertTrue(head(.http1_1, []).keepAlive)
        XCTAssertFalse(head(.http1_1, [("Connection", "close")]).keepAlive)
        XCTAssertFalse(head(.http1_1, [("connection", "Upgrade, CLOSE")]).keepAlive)
        XCTAssertFalse(head(.http1_0, []).keepAlive)
        XCTAssertTrue(head(.http1_0, [("Connection", "Keep-Alive")]).keepAlive)
        XCTAssertFalse(head(.http1_0, [("Connection", "keep-alive"), ("Connection", "close")]).keepAlive)
    }

    func testExpectContinue() {
        XCTAssertTrue(head(.http1_1, [("Expect", "100-Continue")]).expectsContinue)
        XCTAssertFalse(head(.http1_0, [("Expect", "100-continue")]).expectsContinue)
        XCTAssertFalse(head(.http1_1, []).expectsContinue)
    }

    // MARK: - Fuzz

    /// Mutated and random inputs, cut at random points: the parser must never trap, and must
    /// account for every byte it is given.
    func testFuzzNeverCrashes() {
        var random = SplitMix64(seed: 2024)
        let seeds = [pipeline, ascii("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")]
        for round in 0..<3000 {
            var input = seeds[round % seeds.count]
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let position = Int(random.next() % UInt64(input.count))
                switch random.next() % 3 {
                case 0: input[position] = UInt8(truncatingIfNeeded: random.next())
                case 1: input.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                default: input.remove(at: position)
                }
            }
            let cuts = Set((0..<3).map { _ in Int(random.next() % UInt64(input.count + 1)) }).sorted()
            _ = parse(input, cuts: cuts, parser: HTTPRequestParser(headLimit: 256))
        }
    }
}
