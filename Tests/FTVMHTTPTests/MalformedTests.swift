import FTVMHTTP
import XCTest

/// One regression test per malformed shape: what the tracker stops for, and where response
/// framing ends, the same in every split of the streams.
final class MalformedTests: XCTestCase {
    private let get = "GET / HTTP/1.1\r\n\r\n"
    private let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    /// Feeds requests first, whole and cut at every point of either stream; all runs must agree
    /// and match. For a response-side failure, `server` is `failing + rest` and framing ends at
    /// the first byte of `rest` (the offending byte); for a request-side failure, pass the
    /// whole server stream as `failing` and give `framingEnd`.
    private func assertStops(
        _ stop: HTTPStop, _ client: String, _ failing: String = "", _ rest: String = "", framingEnd: UInt64? = nil,
        exchanges: Int = 0, file: StaticString = #filePath, line: UInt = #line
    ) {
        let clientBytes = bytes(client)
        let serverBytes = bytes(failing + rest)
        let end = framingEnd ?? UInt64(failing.utf8.count)
        var runs = [requestsFirst([0..<clientBytes.count], [0..<serverBytes.count])]
        for cut in cuts(serverBytes.count) {
            runs.append(requestsFirst([0..<clientBytes.count], pieces(serverBytes.count, cuts: [cut])))
        }
        for cut in cuts(clientBytes.count) {
            runs.append(requestsFirst(pieces(clientBytes.count, cuts: [cut]), [0..<serverBytes.count]))
        }
        var first: Outcome?
        for (index, feeds) in runs.enumerated() {
            do {
                let outcome = try drive(clientBytes, serverBytes, feeds, inPlace: index % 2 == 1)
                if let first, outcome != first {
                    XCTFail("split \(feeds) changed the outcome:\n  \(outcome)\n  \(first)", file: file, line: line)
                    return
                }
                first = outcome
            } catch {
                XCTFail("\(error)", file: file, line: line)
                return
            }
        }
        XCTAssertEqual(first?.stop, stop, file: file, line: line)
        XCTAssertEqual(first?.framingEnd, end, "framing end", file: file, line: line)
        XCTAssertEqual(first?.exchanges.count, exchanges, "exchanges", file: file, line: line)
    }

    /// Every cut point of a short stream; around the start, the end and 64 KiB of a long one.
    private func cuts(_ count: Int) -> [Int] {
        guard count > 1 else { return [] }
        if count <= 4096 { return Array(1..<count) }
        let around = [1, 2, 3, 65534, 65535, 65536, 65537, count - 3, count - 2, count - 1]
        return around.filter { $0 > 0 && $0 < count } + stride(from: 97, to: count, by: 4099).map { $0 }
    }

    // MARK: The first request line: not HTTP

    func testRequestLineWithoutVersion() { assertStops(.notHTTP, "GET /\r\n\r\n", ok, framingEnd: 0) }
    func testRequestLineHTTP2() { assertStops(.notHTTP, "GET / HTTP/2.0\r\n\r\n", ok, framingEnd: 0) }
    func testRequestLineLowerCaseVersion() { assertStops(.notHTTP, "GET / http/1.1\r\n\r\n", framingEnd: 0) }
    func testRequestLineDoubleSpace() { assertStops(.notHTTP, "GET  / HTTP/1.1\r\n\r\n", framingEnd: 0) }
    func testRequestLineBareCR() { assertStops(.notHTTP, "GET / HTTP/1.1\rX\r\n\r\n", framingEnd: 0) }
    func testRequestLineControlInMethod() { assertStops(.notHTTP, "G\u{1}ET / HTTP/1.1\r\n\r\n", framingEnd: 0) }
    func testRequestLineSpaceInTarget() { assertStops(.notHTTP, "GET /a b HTTP/1.1\r\n\r\n", framingEnd: 0) }
    func testRequestLineGarbageAfterVersion() { assertStops(.notHTTP, "GET / HTTP/1.1x\r\n\r\n", framingEnd: 0) }
    func testRequestLineLeadingSpace() { assertStops(.notHTTP, " GET / HTTP/1.1\r\n\r\n", framingEnd: 0) }
    func testBareCRBeforeRequestLine() { assertStops(.notHTTP, "\r\rGET / HTTP/1.1\r\n\r\n", framingEnd: 0) }

    // MARK: Request heads

    func testLaterRequestLineMalformed() {
        assertStops(.malformedRequest, get + "GET / HTTP/1.1 extra\r\n\r\n", ok + ok, framingEnd: 38, exchanges: 1)
    }
    func testRequestObsFold() { assertStops(.malformedRequest, "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", framingEnd: 0) }
    func testRequestWhitespaceBeforeFirstField() {
        assertStops(.malformedRequest, "GET / HTTP/1.1\r\n Host: h\r\n\r\n", framingEnd: 0)
    }
    func testRequestSpaceBeforeColon() {
        assertStops(.malformedRequest, "GET / HTTP/1.1\r\nHost : h\r\n\r\n", framingEnd: 0)
    }
    func testRequestEmptyFieldName() { assertStops(.malformedRequest, "GET / HTTP/1.1\r\n: h\r\n\r\n", framingEnd: 0) }
    func testRequestFieldWithoutColon() {
        assertStops(.malformedRequest, "GET / HTTP/1.1\r\nHost\r\n\r\n", framingEnd: 0)
    }
    func testRequestBareCRInValue() {
        assertStops(.malformedRequest, "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", framingEnd: 0)
    }
    func testRequestNULInValue() {
        assertStops(.malformedRequest, "GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n", framingEnd: 0)
    }
    func testRequestDELInValue() {
        assertStops(.malformedRequest, "GET / HTTP/1.1\r\nX: a\u{7F}\r\n\r\n", framingEnd: 0)
    }
    func testRequestBareCRAtHeadEnd() { assertStops(.malformedRequest, "GET / HTTP/1.1\r\nX: a\r\n\rx", framingEnd: 0) }

    // MARK: Content-Length and Transfer-Encoding in requests

    func testContentLengthNotANumber() {
        assertStops(.malformedRequest, "POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n", framingEnd: 0)
    }
    func testContentLengthNegative() {
        assertStops(.malformedRequest, "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", framingEnd: 0)
    }
    func testContentLengthEmpty() {
        assertStops(.malformedRequest, "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", framingEnd: 0)
    }
    func testContentLengthSpaceInside() {
        assertStops(.malformedRequest, "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", framingEnd: 0)
    }
    func testContentLengthEmptyListMember() {
        assertStops(.malformedRequest, "POST / HTTP/1.1\r\nContent-Length: 5,,5\r\n\r\n", framingEnd: 0)
    }
    func testContentLengthTrailingComma() {
        assertStops(.malformedRequest, "POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n", framingEnd: 0)
    }
    func testContentLengthListConflict() {
        assertStops(.conflictingContentLength, "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!", framingEnd: 0)
    }
    func testContentLengthOverflow() {
        assertStops(.numberTooLarge, "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", framingEnd: 0)
    }
    func testContentLengthLargestValueIsANumber() {
        // UInt64.max parses; the body simply never ends here.
        let client = "POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nabc"
        var tracker = HTTPExchangeTracker()
        bytes(client).withUnsafeBytes { tracker.feedRequests($0) { _ in XCTFail("no exchange") } }
        XCTAssertNil(tracker.stop)
        XCTAssertFalse(tracker.isAtBoundary)
    }
    func testTransferEncodingWithContentLength() {
        let client = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
        assertStops(.transferEncodingWithContentLength, client, framingEnd: 0)
    }
    func testTransferEncodingNotChunked() {
        assertStops(.unsupportedTransferCoding, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", framingEnd: 0)
    }
    func testTransferEncodingChunkedNotLast() {
        let client = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
        assertStops(.unsupportedTransferCoding, client, framingEnd: 0)
    }
    func testTransferEncodingOtherToken() {
        assertStops(.unsupportedTransferCoding, "POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", framingEnd: 0)
    }
    func testTransferEncodingQuotedCommaIsNotASeparator() {
        // The final member is `gzip;x="a, chunked"`, not chunked.
        let client = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip;x=\"a, chunked\"\r\n\r\n"
        assertStops(.unsupportedTransferCoding, client, framingEnd: 0)
    }
    func testTransferEncodingEmpty() {
        assertStops(.unsupportedTransferCoding, "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", framingEnd: 0)
    }
    func testTransferEncodingInHTTP10() {
        let client = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        assertStops(.unsupportedTransferCoding, client, framingEnd: 0)
    }

    // MARK: Chunked request bodies (the head was parsed, so its response is still framed)

    private let chunkedPost = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"

    func testChunkSizeMissing() { assertStops(.malformedRequest, chunkedPost + "\r\n", ok, framingEnd: 38) }
    func testChunkSizeNotHex() { assertStops(.malformedRequest, chunkedPost + "g\r\n", ok, framingEnd: 38) }
    func testChunkSizeSpaceThenGarbage() { assertStops(.malformedRequest, chunkedPost + "1 x\r\n", ok, framingEnd: 38) }
    func testChunkDataWithoutCRLF() { assertStops(.malformedRequest, chunkedPost + "1\r\nab\r\n", ok, framingEnd: 38) }
    func testChunkDataCRWithoutLF() { assertStops(.malformedRequest, chunkedPost + "1\r\na\rb", ok, framingEnd: 38) }
    func testChunkSizeOverflow() {
        assertStops(.numberTooLarge, chunkedPost + "10000000000000000\r\n", ok, framingEnd: 38)
    }
    func testChunkExtensionControlByte() {
        assertStops(.malformedRequest, chunkedPost + "1;a\u{1}\r\n", ok, framingEnd: 38)
    }
    func testTrailerObsFold() {
        assertStops(.malformedRequest, chunkedPost + "0\r\nX: a\r\n b\r\n\r\n", ok, framingEnd: 38)
    }
    func testTrailerTooLarge() {
        let trailer = "X: " + String(repeating: "t", count: 65536) + "\r\n"
        assertStops(.headTooLarge, chunkedPost + "0\r\n" + trailer + "\r\n", ok, framingEnd: 38)
    }
    func testChunkLineTooLarge() {
        assertStops(
            .headTooLarge, chunkedPost + "1;" + String(repeating: "e", count: 65536) + "\r\n", ok, framingEnd: 38)
    }
    func testChunkLinesAndTrailersEachGetTheWholeLimit() {
        // A head, a chunk line and a trailer section of 60 KiB each: none alone is too large.
        let big = String(repeating: "x", count: 60000)
        let client =
            "POST / HTTP/1.1\r\nX: \(big)\r\nTransfer-Encoding: chunked\r\n\r\n1;\(big)\r\na\r\n0\r\nT: \(big)\r\n\r\n"
        var tracker = HTTPExchangeTracker()
        bytes(client).withUnsafeBytes { tracker.feedRequests($0) { _ in } }
        XCTAssertNil(tracker.stop)
        var response = bytes(ok)
        response.withUnsafeMutableBytes {
            tracker.feedResponses(UnsafeRawBufferPointer($0), masked: $0, responseEnd: { _ in }, exchange: { _ in })
        }
        XCTAssertTrue(tracker.isAtBoundary)
    }

    // MARK: Status lines

    func testStatusLineWithoutCode() { assertStops(.malformedResponse, get, "HTTP/1.1 ", "OK\r\n\r\n") }
    func testStatusCodeTwoDigits() { assertStops(.malformedResponse, get, "HTTP/1.1 20", " OK\r\n\r\n") }
    func testStatusCodeFourDigits() { assertStops(.malformedResponse, get, "HTTP/1.1 200", "0 OK\r\n\r\n") }
    func testStatusCodeBelow100() { assertStops(.malformedResponse, get, "HTTP/1.1 09", "9 OK\r\n\r\n") }
    func testStatusCodeAbove599() { assertStops(.malformedResponse, get, "HTTP/1.1 60", "0 OK\r\n\r\n") }
    func testResponseVersion2() { assertStops(.malformedResponse, get, "HTTP/", "2 200 OK\r\n\r\n") }
    func testResponseNoSpaceAfterVersion() { assertStops(.malformedResponse, get, "HTTP/1.1", "\t200 OK\r\n\r\n") }
    func testShoutcastStatusLine() { assertStops(.malformedResponse, get, "", "ICY 200 OK\r\n\r\n") }
    func testEmptyLineBeforeResponse() {
        // Only requests may be preceded by empty lines (RFC 9112 §2.2 asks that of servers).
        assertStops(.malformedResponse, get, "", "\r\nHTTP/1.1 200 OK\r\n\r\n")
    }
    func testReasonPhraseControlByte() { assertStops(.malformedResponse, get, "HTTP/1.1 200 O", "\u{1}K\r\n\r\n") }

    // MARK: Response heads

    func testResponseSpaceBeforeColonInDate() {
        assertStops(.malformedResponse, get, "HTTP/1.1 200 OK\r\nDate", " : x\r\n\r\n")
    }
    func testResponseObsFold() { assertStops(.malformedResponse, get, "HTTP/1.1 200 OK\r\nX: a\r\n", " b\r\n\r\n") }
    func testResponseBareCRInDate() {
        // The Date bytes before the bare CR were masked already; framing ends at the byte after it.
        assertStops(.malformedResponse, get, "HTTP/1.1 200 OK\r\nDate: a\r", "b\r\n\r\n")
    }
    func testResponseContentLengthInvalid() {
        assertStops(.malformedResponse, get, "HTTP/1.1 200 OK\r\nContent-Length: 0", "x10\r\n\r\n")
    }
    func testResponseConflictingContentLength() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2"
        assertStops(.conflictingContentLength, get, head, "\r\n\r\nab")
    }
    func testResponseContentLengthOverflow() {
        assertStops(.numberTooLarge, get, "HTTP/1.1 200 OK\r\nContent-Length: 1844674407370955161", "6\r\n\r\n")
    }
    /// A Content-Length that fits 64 bits but whose body's end would not fit the streams'
    /// offsets: 2^64 - 1 trapped on an overflow (the fuzz harness's find, a crash in the relay).
    func testResponseBodyEndBeyondTheStreamOffsets() {
        for length in ["18446744073709551615", "9223372036854775808"] {
            assertStops(.numberTooLarge, get, "HTTP/1.1 200 OK\r\nContent-Length: \(length)\r\n\r\n", "abc")
        }
    }
    func testResponseTransferEncodingInHTTP10() {
        assertStops(
            .unsupportedTransferCoding, get, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n")
    }
    func testResponseBadChunk() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        assertStops(.malformedResponse, get, head + "3\r\nabc", "x\r\n0\r\n\r\n")
    }
    func testResponseTrailerTooLarge() {
        // The trailer section alone reaches 64 KiB with its first line; the empty line is too much.
        let head =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "t", count: 65536 - 5)
        assertStops(.headTooLarge, get, head + "\r\n", "\r\n")
    }

    // MARK: Pairing

    func testResponseBeforeAnyRequest() {
        var tracker = HTTPExchangeTracker()
        var output = [UInt8](repeating: 0, count: ok.utf8.count)
        bytes(ok).withUnsafeBytes { input in
            output.withUnsafeMutableBytes {
                tracker.feedResponses(input, masked: $0, responseEnd: { _ in XCTFail() }, exchange: { _ in XCTFail() })
            }
        }
        XCTAssertEqual(tracker.stop, .unsolicitedResponse)
        XCTAssertEqual(tracker.responseFramingEnd, 0)
        XCTAssertEqual(output, bytes(ok))
        // The request that then arrives is parsed (a refusal of it would win) but not framed.
        bytes(get).withUnsafeBytes { tracker.feedRequests($0) { _ in XCTFail() } }
        XCTAssertEqual(tracker.stop, .unsolicitedResponse)
        XCTAssertFalse(tracker.isAtBoundary)
    }

    func testRefusedRequestWinsOverAnEarlierUnsolicitedResponse() {
        var tracker = HTTPExchangeTracker()
        var banner = bytes("SSH-2.0-x\r\n")
        banner.withUnsafeMutableBytes {
            tracker.feedResponses(UnsafeRawBufferPointer($0), masked: $0, responseEnd: { _ in }, exchange: { _ in })
        }
        XCTAssertEqual(tracker.stop, .unsolicitedResponse)
        bytes("SSH-2.0-y\r\n").withUnsafeBytes { tracker.feedRequests($0) { _ in } }
        XCTAssertEqual(tracker.stop, .notHTTP)
        XCTAssertEqual(tracker.responseFramingEnd, 0)
    }

    func testStopDescriptionsAreDistinct() {
        let descriptions = HTTPStop.allCases.map(\.description)
        XCTAssertEqual(Set(descriptions).count, HTTPStop.allCases.count)
        XCTAssertEqual(Set(HTTPStop.allCases.map(\.rawValue)).count, HTTPStop.allCases.count)
    }
}
