/// One completed exchange: a request and its final response, both in full.
///
/// The offsets are byte counts fed since the tracker was created (the request stream and the
/// response stream respectively), each just past the exchange's last byte. Together they are an
/// exchange boundary: from there on, the connection is equivalent to a new one whose first
/// request is the next request (RFC 9112 §9.3: persistent connections carry exchanges in order
/// and carry no state between them that framing would have to know about).
public struct HTTPExchange: Hashable, Sendable, CustomStringConvertible {
    /// Just past the request's last byte (head, and body if any) in the client→server stream.
    public var requestEnd: UInt64
    /// Just past the final response's last byte in the server→client stream.
    public var responseEnd: UInt64

    public init(requestEnd: UInt64, responseEnd: UInt64) {
        self.requestEnd = requestEnd
        self.responseEnd = responseEnd
    }

    public var description: String { "(\(requestEnd), \(responseEnd))" }
}

/// Why a tracker stopped following the framing.
///
/// After a stop the tracker finds no boundary past the stopping point and masks nothing past
/// `HTTPExchangeTracker.responseFramingEnd`. None of these is an error of the relay: each says
/// that the rest of the connection is not (or no longer) HTTP/1.x that the tracker can frame, so
/// the connection can only be carried as opaque bytes.
public enum HTTPStop: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The first request line is not an HTTP/1.x request line (TLS, SSH, HTTP/2 prior
    /// knowledge, anything else spoken on an HTTP port).
    case notHTTP = 1
    /// A later request line, a request header field or a chunk of a request body breaks the
    /// grammar of RFC 9112 (obs-fold, whitespace before a colon, a bare CR, a control byte, a
    /// bad chunk line).
    case malformedRequest = 2
    /// A status line, response header field or chunk of a response body breaks the grammar, or a
    /// status code is outside 100...599.
    case malformedResponse = 3
    /// A head, a trailer section or a chunk-size line is longer than
    /// `HTTPExchangeTracker.maximumHeadLength`.
    case headTooLarge = 4
    /// Transfer-Encoding on a request whose final coding is not chunked (RFC 9112 §6.3 item 4:
    /// the server answers 400 and closes), or Transfer-Encoding in an HTTP/1.0 message in either
    /// direction (RFC 9112 §6.1: the framing is faulty).
    case unsupportedTransferCoding = 5
    /// Content-Length fields (or list members) with different values (RFC 9112 §6.3 item 5).
    case conflictingContentLength = 6
    /// Both Transfer-Encoding and Content-Length (RFC 9112 §6.1, §6.3 item 3): a smuggling
    /// attempt or a broken peer, after which a server must close the connection.
    case transferEncodingWithContentLength = 7
    /// 101 Switching Protocols, or a 2xx answer to CONNECT: the bytes after that head are another
    /// protocol.
    case tunnel = 8
    /// A response whose body ends only when the server closes (no Content-Length, no final
    /// chunked coding; RFC 9112 §6.3 item 8), so no boundary follows it. Its head is masked.
    case bodyUntilClose = 9
    /// More requests outstanding (head parsed, exchange not complete) than
    /// `HTTPExchangeTracker.pipelineCapacity`.
    case tooManyPipelined = 10
    /// Response bytes when no request head is waiting for an answer: a server that speaks first
    /// (408 on an idle connection, a banner), more responses than requests, or a server that
    /// answered a head the tracker had not seen completed.
    case unsolicitedResponse = 11
    /// A Content-Length or chunk size that does not fit in 64 bits.
    case numberTooLarge = 12

    public var description: String {
        switch self {
        case .notHTTP: "not HTTP/1.x"
        case .malformedRequest: "malformed request"
        case .malformedResponse: "malformed response"
        case .headTooLarge: "head too large"
        case .unsupportedTransferCoding: "unsupported transfer coding"
        case .conflictingContentLength: "conflicting Content-Length"
        case .transferEncodingWithContentLength: "Transfer-Encoding with Content-Length"
        case .tunnel: "tunnel"
        case .bodyUntilClose: "body until close"
        case .tooManyPipelined: "too many pipelined requests"
        case .unsolicitedResponse: "unsolicited response"
        case .numberTooLarge: "number too large"
        }
    }
}

/// A response in progress, as `HTTPExchangeTracker.responseInProgress` tells it: the end of the
/// request it answers (request-stream offset), and where its body began and will end
/// (response-stream offsets).
public struct ResponseInProgress: Hashable, Sendable {
    public var requestEnd: UInt64
    public var bodyStart: UInt64
    public var end: UInt64

    public init(requestEnd: UInt64, bodyStart: UInt64, end: UInt64) {
        self.requestEnd = requestEnd
        self.bodyStart = bodyStart
        self.end = end
    }
}

/// The one request in flight on a connection, answered by nothing yet, as
/// `HTTPExchangeTracker.requestInFlight` tells it: the boundary its exchange starts at (the
/// previous exchange's ends, or zeros), where the request ends (request-stream offset), and
/// whether it is a HEAD request (whose response has no body). What a restarted relay needs to
/// take a relay server's connection up inside that exchange (`HTTPExchangeTracker.init(awaiting:)`).
public struct RequestInFlight: Hashable, Sendable {
    public var start: HTTPExchange
    public var end: UInt64
    public var isHead: Bool

    public init(start: HTTPExchange, end: UInt64, isHead: Bool) {
        self.start = start
        self.end = end
        self.isHead = isHead
    }
}
