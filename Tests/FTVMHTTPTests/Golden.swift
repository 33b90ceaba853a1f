import FTVMHTTP

/// A golden conversation: both byte streams, built turn by turn (client bytes, then the server's
/// answer), with what the tracker must report.
///
/// The expected values are written down by whoever writes the case — `exchange()` where an
/// exchange ends, the masked form of each response head — never computed by the tracker.
struct Golden: CustomStringConvertible {
    let name: String
    private(set) var client: [UInt8] = []
    private(set) var server: [UInt8] = []
    private(set) var masked: [UInt8] = []
    private(set) var turns: [(client: Int, server: Int)] = []
    private(set) var exchanges: [HTTPExchange] = []
    private(set) var stop: HTTPStop?
    private(set) var framingEnd: UInt64?
    /// Whether the tracker must end at a boundary; by default when it did not stop and the last
    /// exchange ends both streams.
    var atBoundary: Bool?
    /// The server speaks first: only interleavings that keep the turn order in both directions
    /// are causal (a request fed before the server's earlier bytes would change the pairing).
    var strict = false

    init(_ name: String) {
        self.name = name
    }

    var description: String { name }

    mutating func client(_ string: String) {
        client(bytes(string))
    }

    mutating func client(_ data: [UInt8]) {
        if turns.isEmpty || turns[turns.count - 1].server > 0 { turns.append((0, 0)) }
        turns[turns.count - 1].client += data.count
        client += data
    }

    /// Server bytes and how they must look masked (the same unless given).
    mutating func server(_ string: String, masked maskedString: String? = nil) {
        server(bytes(string), masked: maskedString.map(bytes))
    }

    mutating func server(_ data: [UInt8], masked maskedData: [UInt8]? = nil) {
        if turns.isEmpty { turns.append((0, 0)) }
        let expected = maskedData ?? data
        precondition(expected.count == data.count, "\(name): masked form has another length")
        turns[turns.count - 1].server += data.count
        server += data
        masked += expected
    }

    /// An exchange ends here, on both streams.
    mutating func exchange() {
        exchanges.append(HTTPExchange(requestEnd: UInt64(client.count), responseEnd: UInt64(server.count)))
    }

    /// The tracker stops for `reason`, with response framing ending at `framingEnd` (here, by
    /// default: the server bytes so far). Call it where the framing ends, then add what follows.
    mutating func stops(_ reason: HTTPStop, framingEnd end: UInt64? = nil) {
        stop = reason
        framingEnd = end ?? UInt64(server.count)
    }

    var serverCount: UInt64 { UInt64(server.count) }

    var expected: Outcome {
        let boundary =
            atBoundary
            ?? (stop == nil
                && (exchanges.last.map {
                    $0 == HTTPExchange(requestEnd: UInt64(client.count), responseEnd: serverCount)
                }
                    ?? (client.isEmpty && server.isEmpty)))
        return Outcome(
            exchanges: exchanges, responseEnds: [], masked: masked, stop: stop, framingEnd: framingEnd,
            atBoundary: boundary)
    }
}

let date = "Sun, 06 Nov 1994 08:49:37 GMT"
let dashes = String(repeating: "-", count: date.utf8.count)

/// `Date: <date>` as sent, and as masked.
func dated(_ head: String) -> (String, String) {
    (head.replacingDate(with: date), head.replacingDate(with: dashes))
}

extension String {
    /// Every `{date}` placeholder replaced.
    fileprivate func replacingDate(with value: String) -> String {
        split(separator: "{date}", omittingEmptySubsequences: false).joined(separator: value)
    }
}

extension Golden {
    /// A response head with `{date}` placeholders for Date values, masked accordingly, and a body
    /// that is never masked.
    mutating func response(_ head: String, body: String = "") {
        let (sent, masked) = dated(head)
        server(sent, masked: masked)
        if !body.isEmpty { server(body) }
    }
}

// MARK: - The cases

enum Goldens {
    static var all: [Golden] {
        [
            keepAlive, pipelined, head, noContent, notModified, continueThenBody, earlyHints, earlyFinalResponse,
            earlyFinalResponseMidBody, chunkedResponse, chunkedRequest, zeroLength, http10UntilClose, upgrade,
            connect, ssh, tls, http2Preface, obsFoldRequest, malformedResponseHead, bareLF, dateCase,
            spaceBeforeColon, dateInBody, requestHeadTooLarge, responseHeadTooLarge, responseHeadAtLimit,
            transferEncodingWithContentLength, contentLengthLists, conflictingContentLength, unsupportedCoding,
            responseCodingUntilClose, contentLengthTooLarge, chunkSizeTooLarge, serverSpeaksFirst,
            unsolicitedAfterExchange, tooManyPipelined, badChunkInRequestBody, responseTEWithCL, badStatusCodes,
            http10KeepAlive, http10Chunked, headChunked, emptyLinesBeforeRequest, badRequestLines,
        ]
    }

    /// Two GETs on one connection, nginx-style responses with a body each.
    static var keepAlive: Golden {
        var g = Golden("keep-alive GETs")
        g.client("GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
        g.response(
            "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {date}\r\nContent-Type: text/html\r\n"
                + "Content-Length: 13\r\nConnection: keep-alive\r\n\r\n", body: "<html></html>")
        g.exchange()
        g.client("GET /favicon.ico HTTP/1.1\r\nHost: example.test\r\n\r\n")
        g.response("HTTP/1.1 404 Not Found\r\nDate: {date}\r\nContent-Length: 9\r\n\r\n", body: "not found")
        g.exchange()
        return g
    }

    /// Three requests in one segment; three responses coalesced into one (several heads in one
    /// feed, each masked).
    static var pipelined: Golden {
        var g = Golden("pipelined, coalesced responses")
        let requests = ["/a", "/b", "/c"].map { "GET \($0) HTTP/1.1\r\nHost: example.test\r\n\r\n" }
        g.client(requests.joined())
        let bodies = ["alpha", "", "charlie!"]
        var ends: [HTTPExchange] = []
        var requestEnd = 0
        for (request, body) in zip(requests, bodies) {
            requestEnd += request.utf8.count
            g.response(
                "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {date}\r\nContent-Type: text/plain\r\n"
                    + "Content-Length: \(body.utf8.count)\r\nConnection: keep-alive\r\n\r\n", body: body)
            ends.append(HTTPExchange(requestEnd: UInt64(requestEnd), responseEnd: g.serverCount))
        }
        for end in ends { g.appendExchange(end) }
        return g
    }

    /// HEAD: Content-Length describes the GET's body, and none follows (RFC 9110 §9.3.2).
    static var head: Golden {
        var g = Golden("HEAD")
        g.client("HEAD /big.iso HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response(
            "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 1048576\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        g.exchange()
        g.client("GET /small HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 2\r\n\r\n", body: "ok")
        g.exchange()
        return g
    }

    static var noContent: Golden {
        var g = Golden("204")
        g.client("DELETE /item/7 HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 204 No Content\r\nDate: {date}\r\n\r\n")
        g.exchange()
        g.client("GET /item/7 HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nDate: {date}\r\n\r\n")
        g.exchange()
        return g
    }

    /// 304 with a Content-Length (of the representation): no body.
    static var notModified: Golden {
        var g = Golden("304")
        g.client("GET /style.css HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"abc\"\r\n\r\n")
        g.response("HTTP/1.1 304 Not Modified\r\nDate: {date}\r\nETag: \"abc\"\r\nContent-Length: 512\r\n\r\n")
        g.exchange()
        g.client("GET /app.js HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", body: "js;")
        g.exchange()
        return g
    }

    /// Expect: 100-continue; the interim response, then the body, then the final response.
    static var continueThenBody: Golden {
        var g = Golden("100-continue, body, 201")
        g.client("PUT /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        g.response("HTTP/1.1 100 Continue\r\n\r\n")
        g.client("hello world")
        g.response("HTTP/1.1 201 Created\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        return g
    }

    /// 103 Early Hints with its own Date (masked too: it is a response head), then 200.
    static var earlyHints: Golden {
        var g = Golden("103 then 200")
        g.client("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nDate: {date}\r\n\r\n")
        g.response("HTTP/1.1 102 Processing\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 4\r\n\r\n", body: "page")
        g.exchange()
        return g
    }

    /// 417 before the body: the exchange ends only when the body is in.
    static var earlyFinalResponse: Golden {
        var g = Golden("417 before the body")
        g.client("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        g.response("HTTP/1.1 417 Expectation Failed\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n")
        g.client("0123456789")
        g.exchange()
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", body: "x")
        g.exchange()
        return g
    }

    /// 413 while the body is half in.
    static var earlyFinalResponseMidBody: Golden {
        var g = Golden("413 mid-body")
        g.client("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n0123456789")
        g.response("HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\n", body: "big!")
        g.client("abcdefghij")
        g.exchange()
        return g
    }

    /// Chunk extensions (one with BWS and a quoted `;`), a chunk containing CRLF CRLF, trailers
    /// with a Date that is *not* masked (trailers are not a head), then a normal response.
    static var chunkedResponse: Golden {
        var g = Golden("chunked response with extensions and trailers")
        g.client("GET /wiki HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response(
            "HTTP/1.1 200 OK\r\nDate: {date}\r\nTransfer-Encoding: chunked\r\nTrailer: Expires, Date\r\n\r\n",
            body: "4;name=value\r\nWiki\r\n6 ; q=\"a;b\"\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0;last\r\n"
                + "Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\nDate: \(date)\r\n\r\n")
        g.exchange()
        g.client("GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\ndate: {date}\r\nContent-Length: 3\r\n\r\n", body: "end")
        g.exchange()
        return g
    }

    /// A chunked request body (final coding chunked, upper-case hex, trailers).
    static var chunkedRequest: Golden {
        var g = Golden("chunked request body")
        g.client(
            "POST /api HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                + "5\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Checksum: 1234\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", body: "ok")
        g.exchange()
        g.client("POST /api HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n000\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", body: "0\r\n\r\n")
        g.exchange()
        return g
    }

    static var zeroLength: Golden {
        var g = Golden("Content-Length 0")
        g.client("POST /ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        g.client("POST /ping HTTP/1.1\r\nContent-Length: 00\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: {date}\r\n\r\n")
        g.exchange()
        return g
    }

    /// HTTP/1.0 without Content-Length: the body ends at close, so no boundary; the head is
    /// masked, the body (with a Date line in it) is not.
    static var http10UntilClose: Golden {
        var g = Golden("HTTP/1.0 body until close")
        g.client("GET / HTTP/1.0\r\n\r\n")
        g.response("HTTP/1.0 200 OK\r\nDate: {date}\r\nServer: busybox\r\n\r\n")
        g.stops(.bodyUntilClose)
        g.server("<body>\r\nDate: \(date)\r\n</body>")
        return g
    }

    /// An exchange, then a WebSocket upgrade: the 101 head is masked, then nothing is.
    static var upgrade: Golden {
        var g = Golden("101 upgrade")
        g.client("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        g.client(
            "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        g.response(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nDate: {date}\r\n"
                + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        g.stops(.tunnel)
        g.client([0x81, 0x87, 0x01, 0x02, 0x03, 0x04] + bytes("Eatf;!s"))
        g.server([0x81, 0x0D] + bytes("Date: 1\r\n\r\nxx"))
        return g
    }

    /// CONNECT: a 407 is framed normally; a 200 starts a tunnel (TLS bytes after it).
    static var connect: Golden {
        var g = Golden("CONNECT")
        g.client("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
        g.response(
            "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        g.client(
            "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nProxy-Authorization: Basic eDp5\r\n\r\n")
        g.response("HTTP/1.1 200 Connection Established\r\nDate: {date}\r\n\r\n")
        g.stops(.tunnel)
        g.client([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03])
        g.server([0x16, 0x03, 0x03, 0x00, 0x02, 0x02, 0x00])
        return g
    }

    /// SSH on port 80: the server speaks first. Whichever banner the tracker sees first, the
    /// verdict is "not HTTP" and nothing is framed.
    static var ssh: Golden {
        var g = Golden("SSH banners")
        g.server("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
        g.client("SSH-2.0-OpenSSH_9.6\r\n")
        g.server([0x00, 0x00, 0x04, 0x44, 0x0A, 0x14])
        g.stops(.notHTTP, framingEnd: 0)
        return g
    }

    /// A TLS ClientHello where a request was expected.
    static var tls: Golden {
        var g = Golden("TLS ClientHello")
        var hello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x2F, 0x01, 0x00, 0x00, 0x2B, 0x03, 0x03]
        hello += (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        hello += [0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]
        g.client(hello)
        g.stops(.notHTTP, framingEnd: 0)
        g.server([0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])
        return g
    }

    /// HTTP/2 with prior knowledge is not HTTP/1.x.
    static var http2Preface: Golden {
        var g = Golden("HTTP/2 preface")
        g.client("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        g.stops(.notHTTP, framingEnd: 0)
        g.server([0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00])
        return g
    }

    /// obs-fold in the second request: the first exchange stands; the server's 400 to the
    /// broken request is not framed, so its Date stays.
    static var obsFoldRequest: Golden {
        var g = Golden("obs-fold in a request")
        g.client("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 1\r\n\r\n", body: "a")
        g.exchange()
        g.client("GET /b HTTP/1.1\r\nX-Long: a\r\n b\r\n\r\n")
        g.stops(.malformedRequest)
        g.server("HTTP/1.1 400 Bad Request\r\nDate: \(date)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return g
    }

    /// A field line without a colon: framing ends at its CR; the Date before it was masked.
    static var malformedResponseHead: Golden {
        var g = Golden("malformed response head")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nX-Bad")
        g.stops(.malformedResponse)
        g.server("\r\nDate: \(date)\r\n\r\n")
        return g
    }

    /// Bare LF line ends (RFC 9112 §2.2), mixed with CRLF.
    static var bareLF: Golden {
        var g = Golden("bare LF heads")
        g.client("GET / HTTP/1.1\nHost: h\n\n")
        g.response("HTTP/1.1 200 OK\nDate: {date}\nContent-Length: 3\n\n", body: "abc")
        g.exchange()
        g.client("GET /2 HTTP/1.1\r\nHost: h\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate:{date}\nTransfer-Encoding: chunked\n\n", body: "3\nabc\n0\n\n")
        g.exchange()
        return g
    }

    /// Header names are case-insensitive; whitespace before the value is not masked, whitespace
    /// after it is; names that merely contain "date" are left alone; an empty Date is nothing.
    static var dateCase: Golden {
        var g = Golden("Date spellings")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.server(
            "HTTP/1.1 200 OK\r\ndate: \(date)\r\nDATE:\t\(date) \t\r\nX-Date: \(date)\r\nDates: 1\r\nDate-Of: 2\r\n"
                + "Date:\r\nDaTe:  x\r\nContent-Length: 0\r\n\r\n",
            masked:
                "HTTP/1.1 200 OK\r\ndate: \(dashes)\r\nDATE:\t\(dashes)--\r\nX-Date: \(date)\r\nDates: 1\r\nDate-Of: 2\r\n"
                + "Date:\r\nDaTe:  -\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        return g
    }

    /// `Date :` — whitespace between name and colon is invalid (RFC 9112 §5.1; a proxy must
    /// remove it, a server must reject it). The tracker stops there rather than guess.
    static var spaceBeforeColon: Golden {
        var g = Golden("space before colon")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.server("HTTP/1.1 200 OK\r\nDATE")
        g.stops(.malformedResponse)
        g.server(" : \(date)\r\nContent-Length: 0\r\n\r\n")
        return g
    }

    /// Date lines inside bodies, Content-Length and chunked, are data.
    static var dateInBody: Golden {
        var g = Golden("Date in a body")
        g.client("GET /a HTTP/1.1\r\n\r\n")
        let body = "HTTP/1.1 200 OK\r\nDate: \(date)\r\n\r\n"
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: \(body.utf8.count)\r\n\r\n", body: body)
        g.exchange()
        g.client("GET /b HTTP/1.1\r\n\r\n")
        g.response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            body: "14\r\n\r\nDate: 0123456789\r\n\r\n0\r\n\r\n")
        g.exchange()
        return g
    }

    /// A request head of 64 KiB + 1: the first exchange stands, the rest is opaque.
    static var requestHeadTooLarge: Golden {
        var g = Golden("request head > 64 KiB")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        let prefix = "GET /big HTTP/1.1\r\nX-Big: "
        // 65537 bytes: the last LF is one too many.
        g.client(prefix + String(repeating: "a", count: 65536 - prefix.utf8.count - 3) + "\r\n\r\n")
        g.stops(.headTooLarge)
        g.server("HTTP/1.1 431 Request Header Fields Too Large\r\nDate: \(date)\r\nContent-Length: 0\r\n\r\n")
        return g
    }

    /// A response head of 64 KiB + 1 stops at its 65537th byte.
    static var responseHeadTooLarge: Golden {
        var g = Golden("response head > 64 KiB")
        g.client("GET / HTTP/1.1\r\n\r\n")
        let head = "HTTP/1.1 200 OK\r\nDate: {date}\r\nX-Big: "
        let filler = 65536 - head.utf8.count - 2 - date.utf8.count + "{date}".utf8.count
        g.response(head + String(repeating: "b", count: filler) + "\r\n")
        g.stops(.headTooLarge)
        g.server("\r\n")
        return g
    }

    /// Exactly 64 KiB is allowed.
    static var responseHeadAtLimit: Golden {
        var g = Golden("response head of exactly 64 KiB")
        g.client("GET / HTTP/1.1\r\n\r\n")
        let head = "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 0\r\nX-Big: "
        let filler = 65536 - head.utf8.count - 4 - date.utf8.count + "{date}".utf8.count
        g.response(head + String(repeating: "b", count: filler) + "\r\n\r\n")
        g.exchange()
        return g
    }

    /// Transfer-Encoding and Content-Length in a request: a smuggling shape; stop.
    static var transferEncodingWithContentLength: Golden {
        var g = Golden("TE with CL in a request")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        g.client("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        g.stops(.transferEncodingWithContentLength)
        g.server("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return g
    }

    /// Repeated identical Content-Length values, as fields and as a list, are one value.
    static var contentLengthLists: Golden {
        var g = Golden("Content-Length lists")
        g.client("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\nContent-Length:3\r\n\r\nabc")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 2 ,2\r\n\r\n", body: "ok")
        g.exchange()
        return g
    }

    static var conflictingContentLength: Golden {
        var g = Golden("conflicting Content-Length")
        g.client("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        g.stops(.conflictingContentLength, framingEnd: 0)
        g.server("HTTP/1.1 400 Bad Request\r\n\r\n")
        return g
    }

    /// A request coding other than chunked last: the length is unknown (RFC 9112 §6.3 item 4).
    static var unsupportedCoding: Golden {
        var g = Golden("request TE not chunked")
        g.client("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz")
        g.stops(.unsupportedTransferCoding, framingEnd: 0)
        g.server("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return g
    }

    /// A response coding other than chunked last is delimited by close.
    static var responseCodingUntilClose: Golden {
        var g = Golden("response TE not chunked")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nTransfer-Encoding: gzip\r\n\r\n")
        g.stops(.bodyUntilClose)
        g.server([0x1F, 0x8B, 0x08, 0x00])
        return g
    }

    static var contentLengthTooLarge: Golden {
        var g = Golden("Content-Length too large")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 1844674407370955161")
        g.stops(.numberTooLarge)
        g.server("6\r\n\r\n")
        return g
    }

    /// 17 significant hex digits do not fit in 64 bits; leading zeros do not count.
    static var chunkSizeTooLarge: Golden {
        var g = Golden("chunk size too large")
        g.client("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", body: "0001\r\nx\r\n0\r\n\r\n")
        g.appendExchange(HTTPExchange(requestEnd: 18, responseEnd: g.serverCount))
        g.response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", body: "1000000000000000")
        g.stops(.numberTooLarge)
        g.server("0\r\n")
        return g
    }

    /// A 408 on an idle connection, before any request.
    static var serverSpeaksFirst: Golden {
        var g = Golden("408 before any request")
        g.strict = true
        g.stops(.unsolicitedResponse, framingEnd: 0)
        g.server("HTTP/1.1 408 Request Timeout\r\nDate: \(date)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        g.client("GET / HTTP/1.1\r\n\r\n")
        return g
    }

    /// More responses than requests.
    static var unsolicitedAfterExchange: Golden {
        var g = Golden("response without a request")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        g.stops(.unsolicitedResponse)
        g.server("HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Length: 0\r\n\r\n")
        return g
    }

    /// 65 pipelined HEADs: the 65th does not fit; the 64 before it are framed and complete.
    static var tooManyPipelined: Golden {
        var g = Golden("too many pipelined")
        let request = "HEAD / HTTP/1.1\r\n\r\n"
        g.client(String(repeating: request, count: 65))
        for index in 0..<65 {
            g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 5\r\n\r\n")
            g.appendExchange(
                HTTPExchange(requestEnd: UInt64((index + 1) * request.utf8.count), responseEnd: g.serverCount))
            if index == 63 { break }
        }
        g.stops(.tooManyPipelined)
        g.server("HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Length: 5\r\n\r\n")
        return g
    }

    /// A bad chunk line after a complete head: the response to that head is still framed (and
    /// reported through responseEnd), but no exchange completes.
    static var badChunkInRequestBody: Golden {
        var g = Golden("bad chunk in a request body")
        g.client("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        g.response("HTTP/1.1 400 Bad Request\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n")
        g.stops(.malformedRequest)
        g.server("HTTP/1.1 400 Bad Request\r\nDate: \(date)\r\nContent-Length: 0\r\n\r\n")
        return g
    }

    static var responseTEWithCL: Golden {
        var g = Golden("TE with CL in a response")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: {date}\r\nContent-Length: 5\r\n\r\n")
        g.stops(.transferEncodingWithContentLength)
        g.server("0\r\n\r\n")
        return g
    }

    /// Status codes outside 100...599, and HTTP/2-style status lines.
    static var badStatusCodes: Golden {
        var g = Golden("bad status code")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.server("HTTP/1.1 60")
        g.stops(.malformedResponse)
        g.server("0 Weird\r\n\r\n")
        return g
    }

    /// HTTP/1.0 with Content-Length and keep-alive: framed like 1.1.
    static var http10KeepAlive: Golden {
        var g = Golden("HTTP/1.0 keep-alive")
        g.client("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        g.response("HTTP/1.0 200 OK\r\nDate: {date}\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", body: "hi")
        g.exchange()
        g.client("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 2\r\n\r\n", body: "ho")
        g.exchange()
        return g
    }

    /// Transfer-Encoding in an HTTP/1.0 request is faulty framing (RFC 9112 §6.1).
    static var http10Chunked: Golden {
        var g = Golden("HTTP/1.0 with TE")
        g.client("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        g.stops(.unsupportedTransferCoding, framingEnd: 0)
        g.server("HTTP/1.0 400 Bad Request\r\n\r\n")
        return g
    }

    /// A chunked response to HEAD has no body either.
    static var headChunked: Golden {
        var g = Golden("HEAD with chunked response")
        g.client("HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: {date}\r\n\r\n")
        g.appendExchange(HTTPExchange(requestEnd: 19, responseEnd: g.serverCount))
        g.response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: {date}\r\n\r\n", body: "1\r\n!\r\n0\r\n\r\n")
        g.exchange()
        return g
    }

    /// Empty lines before a request line are ignored (RFC 9112 §2.2) and belong to the next
    /// request: the boundary is before them, and a tracker that has seen them is not at one.
    static var emptyLinesBeforeRequest: Golden {
        var g = Golden("empty lines before requests")
        g.client("\r\n\nPOST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        g.client("\r\n")
        g.atBoundary = false
        return g
    }

    /// A later request line that is not one: malformed (not "not HTTP": the connection was).
    static var badRequestLines: Golden {
        var g = Golden("bad later request line")
        g.client("GET / HTTP/1.1\r\n\r\n")
        g.response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        g.exchange()
        g.client("GET  / HTTP/1.1\r\n\r\n")
        g.stops(.malformedRequest)
        g.server("HTTP/1.1 400 Bad Request\r\n\r\n")
        return g
    }
}

extension Golden {
    /// An exchange whose ends are not both "here" (pipelining).
    mutating func appendExchange(_ exchange: HTTPExchange) {
        precondition(exchange.requestEnd <= UInt64(client.count) && exchange.responseEnd <= serverCount)
        exchanges.append(exchange)
    }
}
