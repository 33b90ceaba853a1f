/// Why a request could not be parsed. Every case ends the connection: after a framing error the
/// server cannot know where the next request starts.
public enum HTTPParseError: Error, Sendable, Equatable {
    /// Syntax the server does not accept; the reason is for logs and the 400 body.
    case malformed(String)
    /// Request line plus headers (or the chunked trailer section) exceed the head limit (431).
    case headTooLarge
    /// A major version other than 1 (505).
    case unsupportedVersion
    /// A transfer coding other than plain `chunked` (501).
    case unsupportedTransferEncoding
}

/// What one `HTTPRequestParser.parse` call found.
public enum HTTPRequestEvent: Sendable, Equatable {
    case head(HTTPRequestHead)
    /// Body bytes: indices into the buffer passed to the `parse` call that returned the event,
    /// so the body is never copied.
    case body(Range<Int>)
    /// The request is complete; the next byte belongs to the next (pipelined) request.
    case end
}

/// An incremental HTTP/1.x request parser (RFC 9112): bytes in, events out, no I/O.
///
/// The caller offers whatever it has and the parser reports how much it used, one event at a
/// time. The parser never looks past the end of a request, so a caller that is still streaming
/// a response can stop calling and keep the following pipelined bytes for later.
public struct HTTPRequestParser: Sendable {
    public static let defaultHeadLimit = 16 * 1024
    /// Longest chunk-size line accepted; real ones are a few hex digits.
    static let chunkLineLimit = 1024

    private enum State: Sendable {
        /// Collecting the header section; `lineStart` indexes the current line in `bytes`.
        case head(bytes: [UInt8], lineStart: Int)
        case body(remaining: UInt64)
        case chunkSize(line: [UInt8])
        case chunkData(remaining: UInt64)
        /// Expecting the CRLF that closes a chunk's data.
        case chunkDataEnd(sawCR: Bool)
        /// Discarding trailer fields until an empty line; `total` counts toward the head limit.
        case trailers(lineLength: Int, total: Int)
        case end
        case failed(HTTPParseError)
    }

    public let headLimit: Int
    private var state: State = .head(bytes: [], lineStart: 0)

    public init(headLimit: Int = defaultHeadLimit) {
        self.headLimit = headLimit
    }

    /// Consumes a prefix of `input` and returns at most one event.
    ///
    /// A `nil` event means all of `input` was consumed and more is needed. `.end` may be
    /// returned with nothing consumed, so keep calling until the event is `nil`. After an error
    /// every call throws it again.
    public mutating func parse(
        _ input: UnsafeRawBufferPointer
    ) throws(HTTPParseError) -> (event: HTTPRequestEvent?, consumed: Int) {
        do {
            return try step(input)
        } catch {
            state = .failed(error)
            throw error
        }
    }

    private mutating func step(
        _ input: UnsafeRawBufferPointer
    ) throws(HTTPParseError) -> (event: HTTPRequestEvent?, consumed: Int) {
        var index = 0
        while true {
            switch state {
            case .failed(let error):
                throw error

            case .end:
                state = .head(bytes: [], lineStart: 0)
                return (.end, index)

            case .head(var bytes, var lineStart):
                // Unique ownership while we append: don't leave a second reference in `state`.
                state = .end
                while index < input.count {
                    let byte = input[index]
                    index += 1
                    // RFC 9112 §2.2: ignore empty lines before the request line (stray CRLF
                    // after a previous body).
                    if bytes.isEmpty && (byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")) {
                        continue
                    }
                    guard bytes.count < headLimit else { throw .headTooLarge }
                    bytes.append(byte)
                    guard byte == UInt8(ascii: "\n") else { continue }
                    let lineLength = bytes.count - 1 - lineStart
                    let isEmptyLine = lineLength == 0 || (lineLength == 1 && bytes[lineStart] == UInt8(ascii: "\r"))
                    if isEmptyLine {
                        let (head, framing) = try Self.parseHead(bytes[0..<lineStart])
                        switch framing {
                        case .length(0): state = .end
                        case .length(let length): state = .body(remaining: length)
                        case .chunked: state = .chunkSize(line: [])
                        }
                        return (.head(head), index)
                    }
                    lineStart = bytes.count
                }
                state = .head(bytes: bytes, lineStart: lineStart)
                return (nil, index)

            case .body(let remaining):
                guard index < input.count else { return (nil, index) }
                let take = Int(min(UInt64(input.count - index), remaining))
                state = remaining == UInt64(take) ? .end : .body(remaining: remaining - UInt64(take))
                return (.body(index..<index + take), index + take)

            case .chunkSize(var line):
                state = .end
                var complete = false
                while !complete && index < input.count {
                    let byte = input[index]
                    index += 1
                    complete = byte == UInt8(ascii: "\n")
                    guard !complete else { break }
                    guard line.count < Self.chunkLineLimit else { throw .malformed("chunk size line too long") }
                    line.append(byte)
                }
                guard complete else {
                    state = .chunkSize(line: line)
                    return (nil, index)
                }
                let size = try Self.parseChunkSize(line)
                state = size == 0 ? .trailers(lineLength: 0, total: 0) : .chunkData(remaining: size)

            case .chunkData(let remaining):
                guard index < input.count else { return (nil, index) }
                let take = Int(min(UInt64(input.count - index), remaining))
                state =
                    remaining == UInt64(take)
                    ? .chunkDataEnd(sawCR: false) : .chunkData(remaining: remaining - UInt64(take))
                return (.body(index..<index + take), index + take)

            case .chunkDataEnd(let sawCR):
                guard index < input.count else { return (nil, index) }
                let byte = input[index]
                index += 1
                if byte == UInt8(ascii: "\n") {
                    state = .chunkSize(line: [])
                } else if byte == UInt8(ascii: "\r") && !sawCR {
                    state = .chunkDataEnd(sawCR: true)
                } else {
                    throw .malformed("chunk data not followed by CRLF")
                }

            case .trailers(var lineLength, var total):
                while index < input.count {
                    let byte = input[index]
                    index += 1
                    total += 1
                    guard total <= headLimit else { throw .headTooLarge }
                    if byte == UInt8(ascii: "\n") {
                        if lineLength == 0 {
                            state = .end
                            break
                        }
                        lineLength = 0
                    } else if byte != UInt8(ascii: "\r") || lineLength > 0 {
                        lineLength += 1
                    }
                }
                if case .trailers = state {
                    state = .trailers(lineLength: lineLength, total: total)
                    return (nil, index)
                }
            }
        }
    }

    // MARK: - Head

    private enum Framing {
        case length(UInt64)
        case chunked
    }

    /// Parses the header section without its final empty line.
    private static func parseHead(_ bytes: ArraySlice<UInt8>) throws(HTTPParseError) -> (HTTPRequestHead, Framing) {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        let trimmed = lines.map { $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0 }
        guard let requestLine = trimmed.first else { throw .malformed("missing request line") }

        // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
        let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("request line must have three parts") }
        guard !parts[0].isEmpty, parts[0].allSatisfy(isTokenByte) else { throw .malformed("invalid method") }
        guard !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .malformed("invalid request target")
        }
        let version = try parseVersion(parts[2])

        var headers: [HTTPHeader] = []
        for line in trimmed.dropFirst() {
            guard let first = line.first, first != UInt8(ascii: " "), first != UInt8(ascii: "\t") else {
                throw .malformed("obsolete line folding or empty field line")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw .malformed("field line without colon")
            }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else { throw .malformed("invalid field name") }
            let value = line[(colon + 1)...]
            // Field values: visible ASCII, SP, HTAB, and obs-text (RFC 9110 §5.5); no CR, NUL, ...
            guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == UInt8(ascii: "\t") }) else {
                throw .malformed("control character in field value")
            }
            headers.append(
                HTTPHeader(
                    name: String(decoding: name, as: UTF8.self),
                    value: String(decoding: value, as: UTF8.self).trimmingOWS()))
        }

        let head = HTTPRequestHead(
            method: String(decoding: parts[0], as: UTF8.self),
            target: String(decoding: parts[1], as: UTF8.self),
            version: version, headers: headers)
        return (head, try framing(of: head))
    }

    private static func parseVersion(_ bytes: ArraySlice<UInt8>) throws(HTTPParseError) -> HTTPVersion {
        let text = Array(bytes)
        guard text.count == 8, text[0..<5].elementsEqual("HTTP/".utf8), text[6] == UInt8(ascii: "."),
            let major = decimalDigit(text[5]), let minor = decimalDigit(text[7])
        else { throw .malformed("invalid HTTP version") }
        guard major == 1 else { throw .unsupportedVersion }
        return HTTPVersion(major: major, minor: minor)
    }

    /// Body length rules of RFC 9112 §6. Requests carrying both Content-Length and
    /// Transfer-Encoding are refused instead of guessed at: that ambiguity is how request
    /// smuggling works.
    private static func framing(of head: HTTPRequestHead) throws(HTTPParseError) -> Framing {
        let codings = head.tokens(of: "transfer-encoding")
        let lengths = head.values(of: "content-length")
        if !head.values(of: "transfer-encoding").isEmpty {
            guard lengths.isEmpty else { throw .malformed("both Content-Length and Transfer-Encoding") }
            guard head.version != .http1_0 else { throw .malformed("Transfer-Encoding in an HTTP/1.0 request") }
            guard codings == ["chunked"] else { throw .unsupportedTransferEncoding }
            return .chunked
        }
        var length: UInt64?
        for value in lengths {
            guard let parsed = parseDecimal(value) else { throw .malformed("invalid Content-Length") }
            guard length == nil || length == parsed else { throw .malformed("conflicting Content-Length") }
            length = parsed
        }
        return .length(length ?? 0)
    }

    /// chunk-size [ chunk-ext ] (RFC 9112 §7.1); extensions are ignored.
    private static func parseChunkSize(_ line: [UInt8]) throws(HTTPParseError) -> UInt64 {
        var digits = line[...]
        if digits.last == UInt8(ascii: "\r") { digits = digits.dropLast() }
        if let semicolon = digits.firstIndex(of: UInt8(ascii: ";")) { digits = digits[..<semicolon] }
        while let last = digits.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            digits = digits.dropLast()
        }
        guard !digits.isEmpty else { throw .malformed("missing chunk size") }
        var size: UInt64 = 0
        for byte in digits {
            guard let digit = hexDigit(byte), size >> 60 == 0 else { throw .malformed("invalid chunk size") }
            size = size << 4 | UInt64(digit)
        }
        return size
    }

    // MARK: - Characters

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    static func decimalDigit(_ byte: UInt8) -> UInt8? {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) ? byte - UInt8(ascii: "0") : nil
    }

    static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A decimal UInt64: digits only (no sign, no spaces), no overflow.
    static func parseDecimal(_ text: some StringProtocol) -> UInt64? {
        guard !text.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in text.utf8 {
            guard let digit = decimalDigit(byte) else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }
}
