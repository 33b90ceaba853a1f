/// Follows the HTTP/1.x framing of one TCP connection, both directions, to find exchange
/// boundaries and mask `Date:` values in response heads.
///
/// The relay feeds it every byte of the connection: the client→server stream through
/// `feedRequests`, the server→client stream through `feedResponses`, each in stream order, each
/// byte once, split and interleaved however segments arrive. It reports:
///
/// - **exchange boundaries** — the point right after request i and its final response i, from
///   which the connection is equivalent to a new one whose first request is request i+1;
/// - **masked responses** — the bytes of every `Date:` value in a response head replaced by `-`
///   (RFC 9110 §6.6.1: the one field a replayed response differs in), found by framing, so a head
///   anywhere in a segment (pipelined, coalesced, split) is masked and a body never is.
///
/// Framing follows RFC 9112 §6.3. Requests: a final chunked transfer coding, else
/// Content-Length, else no body. Responses pair with requests in order (§9.3.2); 1xx other than
/// 101 are interim; no body after HEAD, 204 and 304; then chunked, Content-Length, or (for a
/// response delimited by close) a stop. Whatever the tracker cannot frame stops it (`HTTPStop`);
/// the rest of the connection is then opaque to it.
///
/// **What the results depend on.** The boundaries, the masked bytes, `stop` and
/// `responseFramingEnd` are a function of the two byte streams alone — not of how they were
/// split, nor of how the two were interleaved — as long as the interleaving is causal: the bytes
/// of response i are fed after the head of request i (which is what a relay sees, since it
/// forwards the request before the server can answer). Two cases are inherently about time:
/// `.unsolicitedResponse` (response bytes before the head they answer) and `.tooManyPipelined`
/// (more than `pipelineCapacity` exchanges outstanding at once).
///
/// When one side stops, the other still frames what came before: if request parsing stops at
/// request k, responses to the request heads parsed before the stop are still framed and masked
/// (a head parsed in full counts, even if its body then broke), and response framing ends exactly
/// where the next response would begin. If response parsing stops at response j, no request past
/// j matters. Which stop is reported is the one earlier in exchange order; so `stop` can still
/// change from a request-side reason to a response-side one while earlier responses are being
/// framed, and from `.unsolicitedResponse` to the reason a request head is then refused for
/// (a server that spoke first, or answered garbage before the tracker saw all of it).
/// Otherwise it is final once `responseFramingEnd` is set.
///
/// Cost: fixed-size state (under 1 KiB, most of it the pending-request ring), no allocation, no
/// syscalls. Head bytes go through a byte-at-a-time state machine (with tight loops over runs of
/// plain value bytes); body bytes are skipped in bulk. Not thread-safe by itself: one relay
/// thread owns it (`Sendable` so it can be handed to that thread).
public struct HTTPExchangeTracker: Sendable {
    /// The longest head, trailer section or chunk-size line that is followed (RFC 9110 §5.4
    /// leaves the limit to the recipient; common servers use 8–64 KiB).
    public static let maximumHeadLength = MessageFramer.maximumHeadLength
    /// How many requests may be outstanding (head parsed, exchange not complete) at once.
    public static let pipelineCapacity = PendingRequests.capacity

    private var request = MessageFramer(isResponse: false)
    private var response = MessageFramer(isResponse: true)
    private var pending = PendingRequests()

    /// Request heads parsed and accepted, each waiting in `pending` for its exchange.
    private var requestHeads: UInt64 = 0
    private var requestsComplete: UInt64 = 0
    /// Final responses complete.
    private var responsesComplete: UInt64 = 0
    /// Exchanges reported: always min(requestsComplete, responsesComplete).
    private var exchanges: UInt64 = 0
    /// The end of the one response that can complete before its request does (a server that
    /// answers before the request body is in, such as 413 or 417).
    private var earlyResponseEnd: UInt64 = 0

    private var requestParsing = true
    /// Request parsing stopped on a request of its own; responses end where the next unpaired
    /// one would begin.
    private var requestFailed = false
    /// After an unsolicited response at index j, request parsing goes on only until head j is
    /// either parsed (the stop stays `.unsolicitedResponse`) or refused (its reason wins, as it
    /// would have had the request been fed first).
    private var requestHeadLimit = UInt64.max

    /// Client→server bytes fed so far.
    public private(set) var requestBytes: UInt64 = 0
    /// Server→client bytes fed so far.
    public private(set) var responseBytes: UInt64 = 0
    /// Why the tracker stopped following the framing, or nil while it follows it. See the type's
    /// documentation for when it can still change.
    public private(set) var stop: HTTPStop?
    /// Once response framing has ended: the response-stream offset where it ended. Bytes before
    /// it were framed (and masked); this byte and all after it are passed through unchanged. For
    /// a stop after a head (tunnel, body until close), just past that head; for a malformed
    /// response, the offending byte; after a request-side stop, where the next response would
    /// have begun. Nil while responses are still framed, even if `stop` is already set.
    public private(set) var responseFramingEnd: UInt64?
    /// The most recent exchange reported.
    public private(set) var lastExchange: HTTPExchange?
    /// The body of the response being fed, when its length is known (Content-Length): from its
    /// first byte to its end, response-stream offsets.
    private var bodyInProgress: (start: UInt64, end: UInt64)?

    /// A response whose body is being fed, with a known length, answering a complete request:
    /// where that request ended, and where the body began and will end. What a restarted
    /// relay needs to take the framing up again at the response's end (SouthSide).
    public var responseInProgress: ResponseInProgress? {
        guard stop == nil, let body = bodyInProgress, requestsComplete > responsesComplete else { return nil }
        return ResponseInProgress(requestEnd: pending.end(of: responsesComplete), bodyStart: body.start, end: body.end)
    }

    public init() {}

    /// A tracker taken up inside an exchange, from its boundary: as if it had been fed a whole
    /// request of `length` bytes (a HEAD one when `isHead`) and nothing since. Its offsets count
    /// from that boundary. A restarted relay found a relay server's connection so, with the
    /// response bytes still to be fed (`requestInFlight` noted the request).
    public init(awaitingResponseTo length: UInt64, isHead: Bool) {
        pending.setFlags(isHead ? .head : [], of: 0)
        pending.setEnd(length, of: 0)
        requestHeads = 1
        requestsComplete = 1
        requestBytes = length
        request.continueConnection()
    }

    /// The request in flight when it is the only one, complete, with nothing of its response
    /// and nothing after it fed yet; nil otherwise (and for CONNECT, whose answer may start a
    /// tunnel). A relay notes it in the log for a restarted relay (`init(awaitingResponseTo:)`).
    public var requestInFlight: RequestInFlight? {
        let start = lastExchange ?? HTTPExchange(requestEnd: 0, responseEnd: 0)
        guard stop == nil, requestHeads == exchanges + 1, requestsComplete == requestHeads,
            responsesComplete == exchanges, request.isAtMessageStart, response.isAtMessageStart,
            responseBytes == start.responseEnd, !pending.flags(of: exchanges).contains(.connect)
        else { return nil }
        return RequestInFlight(start: start, end: requestBytes, isHead: pending.flags(of: exchanges).contains(.head))
    }

    /// The number of exchanges reported so far.
    public var completedExchanges: UInt64 { exchanges }

    /// True when the tracker sits exactly at a boundary: every request fed is complete and
    /// answered by a final response, and nothing of a next message (not even an empty line) has
    /// been fed on either side. Also true before anything was fed; never after a stop.
    public var isAtBoundary: Bool {
        stop == nil && exchanges == requestHeads && request.isAtMessageStart && response.isAtMessageStart
    }

    // MARK: Requests

    /// Client→server bytes, in stream order, each byte once. Calls `exchange` for each exchange
    /// this call completes, in order (an exchange whose response came first completes here).
    public mutating func feedRequests(_ bytes: UnsafeRawBufferPointer, exchange: (HTTPExchange) -> Void) {
        let base = requestBytes
        requestBytes += UInt64(bytes.count)
        var index = 0
        while requestParsing && index < bytes.count {
            let (next, event) = request.run(bytes, from: index, masked: nil)
            index = next
            switch event {
            case .needMore:
                break
            case .headComplete:
                requestHeadComplete(at: base + UInt64(index), exchange)
            case .messageComplete:
                completeRequest(at: base + UInt64(index), exchange)
            case .failed(let reason):
                stopRequests(reason)
            }
        }
    }

    /// Chooses the request body's framing (RFC 9112 §6.3 items 3, 4, 6, 7) and queues the
    /// request for its response.
    private mutating func requestHeadComplete(at position: UInt64, _ exchange: (HTTPExchange) -> Void) {
        if requestHeads == requestHeadLimit {
            requestParsing = false
            return
        }
        guard requestHeads - exchanges < Self.pipelineCapacity else { return stopRequests(.tooManyPipelined) }
        enum Body { case none, length(UInt64), chunked }
        let body: Body
        if request.hasTransferEncoding {
            // TE with CL: a server must close after answering (§6.1), so nothing follows.
            guard !request.hasContentLength else { return stopRequests(.transferEncodingWithContentLength) }
            // TE in HTTP/1.0 is faulty framing (§6.1); a final coding other than chunked
            // leaves the length unknown and the server answers 400 and closes (§6.3 item 4).
            guard request.minorVersion != 0 && request.finalCodingIsChunked else {
                return stopRequests(.unsupportedTransferCoding)
            }
            body = .chunked
        } else if request.hasContentLength && request.contentLength > 0 {
            body = .length(request.contentLength)
        } else {
            body = .none
        }
        var flags = PendingRequests.Flags()
        if request.isHeadRequest { flags.insert(.head) }
        if request.isConnectRequest { flags.insert(.connect) }
        pending.setFlags(flags, of: requestHeads)
        requestHeads += 1
        switch body {
        case .none:
            request.startMessage()
            completeRequest(at: position, exchange)
        case .length(let length):
            request.startBody(length: length)
        case .chunked:
            request.startChunkedBody()
        }
    }

    private mutating func completeRequest(at end: UInt64, _ exchange: (HTTPExchange) -> Void) {
        let index = requestsComplete
        pending.setEnd(end, of: index)
        requestsComplete += 1
        if responsesComplete > index { report(HTTPExchange(requestEnd: end, responseEnd: earlyResponseEnd), exchange) }
    }

    private mutating func stopRequests(_ reason: HTTPStop) {
        // Any stop already set is an unsolicited response at a later (or the same) index, which
        // this one precedes in exchange order; a response-side failure would have ended request
        // parsing before we got here.
        stop = reason
        requestParsing = false
        requestFailed = true
        endResponseFramingIfUnpaired(at: responseBytes)
    }

    // MARK: Responses

    /// Server→client bytes, in stream order, each byte once. Writes `bytes` into `masked` (at
    /// least `bytes.count` bytes; the same memory as `bytes` or disjoint from it) with every
    /// `Date:` value in a response head masked as `-`.
    ///
    /// Calls `responseEnd(position)` at the end of every final response framed (`position`
    /// indexes `bytes`, just past the response's last byte; `masked[0..<position]` is written by
    /// then), and after it `exchange` for the exchange that response completes, if its request is
    /// complete. A 2xx to CONNECT ends with its head and is reported, but completes no exchange
    /// (a tunnel follows). Not reported: interim responses (1xx, 101 included: what follows it is
    /// another protocol), and a response delimited by close, which never ends within the framing;
    /// `responseFramingEnd` says where their heads ended.
    public mutating func feedResponses(
        _ bytes: UnsafeRawBufferPointer, masked: UnsafeMutableRawBufferPointer,
        responseEnd: (Int) -> Void, exchange: (HTTPExchange) -> Void
    ) {
        let count = bytes.count
        precondition(masked.count >= count, "masked output is shorter than the input")
        if count > 0, let source = bytes.baseAddress, let target = masked.baseAddress,
            source != UnsafeRawPointer(target)
        {
            target.copyMemory(from: source, byteCount: count)
        }
        let base = responseBytes
        responseBytes += UInt64(count)
        var index = 0
        while responseFramingEnd == nil && index < count {
            if response.isAtMessageStart && responsesComplete == requestHeads {
                // Nothing to answer. After a request-side stop this is the end of framing
                // (normally settled already when the last paired response completed).
                if requestFailed {
                    responseFramingEnd = base + UInt64(index)
                } else {
                    stopResponses(.unsolicitedResponse, at: base + UInt64(index))
                }
                break
            }
            let (next, event) = response.run(bytes, from: index, masked: masked.baseAddress)
            index = next
            switch event {
            case .needMore:
                break
            case .headComplete:
                responseHeadComplete(at: index, base: base, responseEnd, exchange)
            case .messageComplete:
                completeResponse(at: index, base: base, responseEnd, exchange)
            case .failed(let reason):
                stopResponses(reason, at: base + UInt64(index))
            }
        }
    }

    /// Chooses the response body's framing from the status and the request it answers
    /// (RFC 9112 §6.3 items 1–8).
    private mutating func responseHeadComplete(
        at index: Int, base: UInt64, _ responseEnd: (Int) -> Void, _ exchange: (HTTPExchange) -> Void
    ) {
        let position = base + UInt64(index)
        let flags = pending.flags(of: responsesComplete)
        let status = response.status
        if status == 101 { return stopResponses(.tunnel, at: position) }
        if status < 200 {
            // Interim (RFC 9110 §15.2): the final response to the same request follows.
            response.startMessage()
            return
        }
        if flags.contains(.head) || status == 204 || status == 304 {
            return completeResponse(at: index, base: base, responseEnd, exchange)
        }
        if flags.contains(.connect) && status < 300 {
            // A final response that ends with its head (RFC 9110 §9.3.6); the tunnel follows, so
            // no exchange completes.
            responseEnd(index)
            return stopResponses(.tunnel, at: position)
        }
        if response.hasTransferEncoding {
            guard !response.hasContentLength else {
                return stopResponses(.transferEncodingWithContentLength, at: position)
            }
            guard response.minorVersion != 0 else { return stopResponses(.unsupportedTransferCoding, at: position) }
            // A final coding other than chunked is delimited by close (§6.3 item 4).
            guard response.finalCodingIsChunked else { return stopResponses(.bodyUntilClose, at: position) }
            response.startChunkedBody()
        } else if response.hasContentLength {
            guard response.contentLength > 0 else {
                return completeResponse(at: index, base: base, responseEnd, exchange)
            }
            // A body whose end would not fit the streams' offsets (under 2^63, so that a relay's
            // base plus it still fits) cannot be framed: a Content-Length of 2^64 - 1 trapped here
            // on an overflow (found by the fuzz harness).
            let (end, overflow) = position.addingReportingOverflow(response.contentLength)
            guard !overflow, end < 1 << 63 else { return stopResponses(.numberTooLarge, at: position) }
            response.startBody(length: response.contentLength)
            bodyInProgress = (position, end)
        } else {
            stopResponses(.bodyUntilClose, at: position)
        }
    }

    private mutating func completeResponse(
        at index: Int, base: UInt64, _ responseEnd: (Int) -> Void, _ exchange: (HTTPExchange) -> Void
    ) {
        response.startMessage()
        bodyInProgress = nil
        let end = base + UInt64(index)
        let which = responsesComplete
        responsesComplete += 1
        responseEnd(index)
        if requestsComplete > which {
            report(HTTPExchange(requestEnd: pending.end(of: which), responseEnd: end), exchange)
        } else {
            earlyResponseEnd = end
        }
        endResponseFramingIfUnpaired(at: end)
    }

    private mutating func stopResponses(_ reason: HTTPStop, at position: UInt64) {
        // A response-side stop precedes in exchange order any request-side stop seen so far:
        // those are at this response's request (in its body) or later.
        stop = reason
        responseFramingEnd = position
        bodyInProgress = nil
        if reason == .unsolicitedResponse {
            requestHeadLimit = requestHeads
        } else {
            requestParsing = false
        }
    }

    /// After a request-side stop, response framing ends as soon as every accepted request head
    /// has its final response.
    private mutating func endResponseFramingIfUnpaired(at position: UInt64) {
        if responseFramingEnd == nil && requestFailed && response.isAtMessageStart
            && responsesComplete == requestHeads
        {
            responseFramingEnd = position
        }
    }

    private mutating func report(_ completed: HTTPExchange, _ exchange: (HTTPExchange) -> Void) {
        exchanges += 1
        lastExchange = completed
        exchange(completed)
    }
}
