import FTVMHTTP
import XCTest

/// The tracker's API contract, step by step: when it is at a boundary, the order of callbacks,
/// which feed call completes an exchange, how stops combine, odd buffers.
final class HTTPExchangeTrackerTests: XCTestCase {
    private var tracker = HTTPExchangeTracker()
    private var events: [String] = []

    override func setUp() {
        tracker = HTTPExchangeTracker()
        events = []
    }

    private func request(_ string: String) {
        bytes(string).withUnsafeBytes { tracker.feedRequests($0) { events.append("exchange \($0)") } }
    }

    /// Feeds `string` as response bytes and returns them masked.
    @discardableResult
    private func response(_ string: String) -> String {
        var data = bytes(string)
        data.withUnsafeMutableBytes { buffer in
            tracker.feedResponses(UnsafeRawBufferPointer(buffer), masked: buffer) {
                events.append("end \($0)")
            } exchange: {
                events.append("exchange \($0)")
            }
        }
        return text(data)
    }

    func testBoundaryStates() {
        XCTAssertTrue(tracker.isAtBoundary)
        request("PUT /f HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        XCTAssertFalse(tracker.isAtBoundary)
        response("HTTP/1.1 100 Continue\r\n\r\n")
        XCTAssertFalse(tracker.isAtBoundary, "an interim response answers nothing")
        request("abc")
        XCTAssertFalse(tracker.isAtBoundary)
        response("HTTP/1.1 204 No Content\r\n")
        XCTAssertFalse(tracker.isAtBoundary, "half a head")
        response("\r\n")
        XCTAssertTrue(tracker.isAtBoundary)
        XCTAssertEqual(tracker.lastExchange, HTTPExchange(requestEnd: 63, responseEnd: 52))
        XCTAssertEqual(tracker.completedExchanges, 1)
        XCTAssertEqual(events, ["end 2", "exchange (63, 52)"], "positions index the call's bytes")
        request("G")
        XCTAssertFalse(tracker.isAtBoundary)
        XCTAssertEqual(tracker.requestBytes, 64)
        XCTAssertEqual(tracker.responseBytes, 52)
        XCTAssertNil(tracker.stop)
        XCTAssertNil(tracker.responseFramingEnd)
    }

    /// The request in flight is told only while it is alone, complete and unanswered; a tracker
    /// taken up after it frames what follows as the tracker that saw it did, from the boundary.
    func testARequestInFlightAndATrackerTakenUpAfterIt() {
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        request("GET /1 HTTP/1.1\r\n\r\n")
        response(answer)
        XCTAssertNil(tracker.requestInFlight, "none")
        request("HEAD /2 HTTP/1.1\r\n\r\n")
        let start = HTTPExchange(requestEnd: 19, responseEnd: 40)
        XCTAssertEqual(tracker.requestInFlight, RequestInFlight(start: start, end: 39, isHead: true))
        var resumed = HTTPExchangeTracker(awaitingResponseTo: 39 - 19, isHead: true)
        var resumedEvents: [String] = []
        events = []
        let parts: [(isRequest: Bool, text: String)] = [
            (false, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), (true, "GET /3 HTTP/1.1\r\n\r\n"),
            (false, answer), (true, "POST /4 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
        ]
        for part in parts {
            var data = bytes(part.text)
            if part.isRequest {
                request(part.text)
                data.withUnsafeBytes { resumed.feedRequests($0) { resumedEvents.append("exchange \(shifted($0))") } }
            } else {
                response(part.text)
                data.withUnsafeMutableBytes { buffer in
                    resumed.feedResponses(UnsafeRawBufferPointer(buffer), masked: buffer) { _ in
                    } exchange: {
                        resumedEvents.append("exchange \(shifted($0))")
                    }
                }
            }
        }
        func shifted(_ exchange: HTTPExchange) -> HTTPExchange {
            HTTPExchange(
                requestEnd: exchange.requestEnd + start.requestEnd,
                responseEnd: exchange.responseEnd + start.responseEnd)
        }
        XCTAssertEqual(resumedEvents, events.filter { $0.hasPrefix("exchange") })
        XCTAssertEqual(resumedEvents.count, 2, "the HEAD's answer had no body")
        let last = tracker.requestInFlight
        XCTAssertEqual(last?.isHead, false)
        XCTAssertEqual(
            resumed.requestInFlight.map {
                RequestInFlight(start: shifted($0.start), end: $0.end + 19, isHead: $0.isHead)
            }, last)

        response("HTTP/1.1 200 OK\r\n")
        XCTAssertNil(tracker.requestInFlight, "its answer has begun")
        tracker = HTTPExchangeTracker()
        request("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        XCTAssertNil(tracker.requestInFlight, "two in flight")
        tracker = HTTPExchangeTracker()
        request("POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")
        XCTAssertNil(tracker.requestInFlight, "its body is not all in")
        tracker = HTTPExchangeTracker()
        request("CONNECT example.org:443 HTTP/1.1\r\n\r\n")
        XCTAssertNil(tracker.requestInFlight, "its answer may start a tunnel")
    }

    /// A final response before the request body: `feedResponses` reports the response's end,
    /// `feedRequests` the exchange once the body is in.
    func testEarlyResponseCompletesInFeedRequests() {
        request("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
        response("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(events, ["end 53"])
        request("cd")
        XCTAssertEqual(events, ["end 53", "exchange (42, 53)"])
        XCTAssertTrue(tracker.isAtBoundary)
    }

    /// Coalesced responses: each end, then its exchange, in stream order, in one call.
    func testCallbackOrderInOneFeed() {
        request("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
        let first = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
        response(first + first)
        XCTAssertEqual(events, ["end 39", "exchange (19, 39)", "end 78", "exchange (38, 78)"])
    }

    /// A request body breaks after its head was parsed: its response is still framed, then a
    /// malformed response before the framing end takes over the stop reason.
    func testResponseFailureOverridesAnEarlierRequestStop() {
        request("GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz")
        XCTAssertEqual(tracker.stop, .malformedRequest)
        XCTAssertNil(tracker.responseFramingEnd, "two responses are still due")
        XCTAssertEqual(
            response("HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 0\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nDate: -\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(
            response("HTTP/1.1 400 Bad\r\nDate: y\r\nBroken\r\n"), "HTTP/1.1 400 Bad\r\nDate: -\r\nBroken\r\n")
        XCTAssertEqual(tracker.stop, .malformedResponse)
        XCTAssertEqual(tracker.responseFramingEnd, 47 + 33)
        XCTAssertEqual(response("Date: z\r\n\r\n"), "Date: z\r\n\r\n")
        XCTAssertEqual(tracker.completedExchanges, 1)
    }

    /// After a request-side stop, framing ends where the next response would begin, even when no
    /// response byte has been fed yet.
    func testFramingEndIsSettledEagerly() {
        request("GET / HTTP/1.1\r\n\r\n")
        response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        request("\u{16}\u{3}")
        XCTAssertEqual(tracker.stop, .malformedRequest)
        XCTAssertEqual(tracker.responseFramingEnd, 38)
        XCTAssertEqual(response("HTTP/1.1 200 OK\r\nDate: now\r\n\r\n"), "HTTP/1.1 200 OK\r\nDate: now\r\n\r\n")
        XCTAssertFalse(tracker.isAtBoundary)
    }

    /// Empty feeds (nil base addresses) and a masked buffer longer than the input.
    func testOddBuffers() {
        tracker.feedRequests(UnsafeRawBufferPointer(start: nil, count: 0)) { _ in XCTFail() }
        let empty = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        tracker.feedResponses(
            UnsafeRawBufferPointer(empty), masked: empty, responseEnd: { _ in XCTFail() }, exchange: { _ in XCTFail() })
        XCTAssertTrue(tracker.isAtBoundary)
        request("GET / HTTP/1.1\r\n\r\n")
        let input = bytes("HTTP/1.1 200 OK\r\nDate: 1\r\nContent-Length: 0\r\n\r\n")
        var output = [UInt8](repeating: 0xAA, count: input.count + 8)
        input.withUnsafeBytes { input in
            output.withUnsafeMutableBytes {
                tracker.feedResponses(input, masked: $0, responseEnd: { _ in }, exchange: { _ in })
            }
        }
        XCTAssertEqual(
            text(Array(output.prefix(input.count))), "HTTP/1.1 200 OK\r\nDate: -\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(Array(output.suffix(8)), [UInt8](repeating: 0xAA, count: 8))
        XCTAssertTrue(tracker.isAtBoundary)
    }

    /// Offsets are stream offsets, not per-call: many exchanges in many small feeds.
    func testOffsetsAccumulate() {
        let get = "GET / HTTP/1.1\r\n\r\n"
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        for _ in 0..<1000 {
            for byte in get.utf8 { request(String(UnicodeScalar(byte))) }
            response(ok)
        }
        XCTAssertEqual(tracker.completedExchanges, 1000)
        XCTAssertEqual(tracker.lastExchange, HTTPExchange(requestEnd: 18_000, responseEnd: 40_000))
        XCTAssertTrue(tracker.isAtBoundary)
    }

    /// The constants the documentation promises.
    func testLimits() {
        XCTAssertEqual(HTTPExchangeTracker.maximumHeadLength, 65536)
        XCTAssertEqual(HTTPExchangeTracker.pipelineCapacity, 64)
        XCTAssertLessThanOrEqual(MemoryLayout<HTTPExchangeTracker>.size, 1024, "fixed, small state")
    }
}

extension HTTPExchangeTrackerTests {
    /// A 2xx to CONNECT is a final response ending with its head: reported, but no exchange.
    /// A 101 is not final, and a body until close never ends: neither is reported.
    func testWhichResponsesReportTheirEnd() {
        request("CONNECT h:443 HTTP/1.1\r\n\r\n")
        response("HTTP/1.1 200 OK\r\n\r\n\u{16}\u{3}")
        XCTAssertEqual(events, ["end 19"])
        XCTAssertEqual(tracker.stop, .tunnel)
        XCTAssertEqual(tracker.responseFramingEnd, 19)

        setUp()
        request("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n")
        response("HTTP/1.1 101 Switching Protocols\r\n\r\nxyz")
        XCTAssertEqual(events, [])
        XCTAssertEqual(tracker.responseFramingEnd, 36)

        setUp()
        request("GET / HTTP/1.0\r\n\r\n")
        response("HTTP/1.0 200 OK\r\n\r\nbody")
        XCTAssertEqual(events, [])
        XCTAssertEqual(tracker.stop, .bodyUntilClose)
        XCTAssertEqual(tracker.responseFramingEnd, 19)
    }
}
