public struct HTTPStatus: Sendable, Equatable {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    public static let `continue` = HTTPStatus(code: 100, reason: "Continue")
    public static let ok = HTTPStatus(code: 200, reason: "OK")
    public static let noContent = HTTPStatus(code: 204, reason: "No Content")
    public static let partialContent = HTTPStatus(code: 206, reason: "Partial Content")
    public static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    public static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    public static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    public static let rangeNotSatisfiable = HTTPStatus(code: 416, reason: "Range Not Satisfiable")
    public static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")
    public static let internalServerError = HTTPStatus(code: 500, reason: "Internal Server Error")
    public static let notImplemented = HTTPStatus(code: 501, reason: "Not Implemented")
    public static let httpVersionNotSupported = HTTPStatus(code: 505, reason: "HTTP Version Not Supported")
}

/// A complete response, body included or described.
///
/// Serialisation is deliberately bare: no Date, no Server, no header whose value could differ
/// between two runs. The backup VM regenerates every response from the replayed request and
/// the two must match byte for byte (docs/replay.md says why a `Date:` would cost more than it
/// is worth: ftvm masks one of equal length, but a service that needs no mask is the simple
/// case); `GET /random/N` is the deliberate exception (its body differs, its head does not).
public struct DemoResponse: Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        case bytes([UInt8])
        /// Generated while sending; never materialised (it may be many GB).
        case splitMix(SplitMix64Stream)
        /// Generated while sending, framed with `Transfer-Encoding: chunked`.
        case chunked(ChunkedSplitMix64Stream)
        /// No content at all (204): the head carries neither Content-Type nor Content-Length
        /// (RFC 9110 §8.6 forbids the latter in a 204).
        case none

        /// The payload's length (before any transfer coding).
        public var count: UInt64 {
            switch self {
            case .bytes(let bytes): UInt64(bytes.count)
            case .splitMix(let stream): stream.remaining
            case .chunked(let stream): stream.length
            case .none: 0
            }
        }
    }

    public var status: HTTPStatus
    public var contentType: String
    /// Extra fields such as `Allow` or `ETag`, written in order between the framing fields and
    /// Connection.
    public var headers: [HTTPHeader]
    public var body: Body

    public init(status: HTTPStatus, contentType: String, headers: [HTTPHeader] = [], body: Body) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    public static func text(_ status: HTTPStatus, _ text: String, headers: [HTTPHeader] = []) -> DemoResponse {
        DemoResponse(status: status, contentType: "text/plain", headers: headers, body: .bytes(Array(text.utf8)))
    }

    public static let noContent = DemoResponse(status: .noContent, contentType: "", body: .none)

    /// Status line and header section, through the empty line. The same for GET and HEAD: a
    /// response to HEAD announces the body it leaves out (RFC 9110 §9.3.2).
    ///
    /// - Parameters:
    ///   - keepAlive: whether the connection stays open afterwards.
    ///   - requestVersion: an HTTP/1.0 client needs `Connection: keep-alive` spelled out.
    public func serializedHead(keepAlive: Bool, requestVersion: HTTPVersion) -> [UInt8] {
        var text = "HTTP/1.1 \(status.code) \(status.reason)\r\n"
        switch body {
        case .bytes, .splitMix:
            text += "Content-Type: \(contentType)\r\n"
            text += "Content-Length: \(body.count)\r\n"
        case .chunked(let stream):
            text += "Content-Type: \(contentType)\r\n"
            text += "Transfer-Encoding: chunked\r\n"
            if stream.trailer { text += "Trailer: X-Length\r\n" }
        case .none:
            break
        }
        for header in headers {
            text += "\(header.name): \(header.value)\r\n"
        }
        if !keepAlive {
            text += "Connection: close\r\n"
        } else if requestVersion == .http1_0 {
            text += "Connection: keep-alive\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// The response to a request that could not be parsed.
    public static func forParseError(_ error: HTTPParseError) -> DemoResponse {
        switch error {
        case .malformed(let reason): .text(.badRequest, "bad request: \(reason)\n")
        case .headTooLarge: .text(.requestHeaderFieldsTooLarge, "request header section too large\n")
        case .unsupportedVersion: .text(.httpVersionNotSupported, "only HTTP/1.x is supported\n")
        case .unsupportedTransferEncoding: .text(.notImplemented, "only Transfer-Encoding: chunked is supported\n")
        }
    }
}
