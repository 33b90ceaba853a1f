/// What `MessageFramer.run` stopped at.
enum FramerEvent: Equatable {
    /// Every byte was consumed; the message goes on in the next call.
    case needMore
    /// The empty line that ends the head was the last byte consumed. The framer waits in
    /// `.awaitingBody` until the tracker, which knows the request a response answers, chooses
    /// the body's framing.
    case headComplete
    /// The message's last byte (body, or the empty line after the trailers) was the last byte
    /// consumed; the framer is ready for the next message.
    case messageComplete
    /// The byte at the returned index cannot continue a valid message. It was not consumed
    /// (and, in a response, not masked).
    case failed(HTTPStop)
}

/// A byte-at-a-time framer for one direction of an HTTP/1.x connection (RFC 9112).
///
/// Heads are never buffered: the relay must not allocate, and a head can be split across any
/// number of segments. The framer keeps only what framing needs — the status code, the method's
/// HEAD/CONNECT-ness, Content-Length parsed digit by digit, whether the last transfer coding is
/// chunked — and recognizes the three header names it cares about by matching them byte by byte
/// as they arrive. Bodies (Content-Length bytes, chunk data) are skipped with one subtraction per
/// call, whatever their size.
///
/// Value type with fixed-size state only; the tracker owns one per direction.
struct MessageFramer {
    /// Where in the message the next byte goes.
    enum State: UInt8 {
        // Request line (RFC 9112 §3): method SP request-target SP HTTP-version.
        case requestStart, requestStartCR, method, target, requestVersion
        // Status line (RFC 9112 §4): HTTP-version SP 3DIGIT [SP reason-phrase].
        case responseVersion, statusCode, statusAfterCode, reason
        // Shared by both start lines: the CR before the line's LF.
        case startLineCR
        // Field lines (RFC 9112 §5), in the head or in a trailer section.
        case fieldLineStart, fieldName, fieldValueLeadingSpace, fieldValue, fieldLineCR, sectionEndCR
        // Between `.headComplete` and the tracker's choice of framing.
        case awaitingBody
        // Content-Length body.
        case body
        // Chunked body (RFC 9112 §7.1).
        case chunkSize, chunkSizeSpace, chunkExtension, chunkSizeCR, chunkData, chunkDataCR, chunkDataLF
    }

    /// The fields whose values framing or masking needs. Everything else is `.other`.
    enum Field: UInt8 {
        case other, contentLength, transferEncoding, date
    }

    private static let versionPrefix: StaticString = "HTTP/1."
    private static let contentLengthName: StaticString = "content-length"
    private static let transferEncodingName: StaticString = "transfer-encoding"
    private static let dateName: StaticString = "date"
    private static let headMethod: StaticString = "HEAD"
    private static let connectMethod: StaticString = "CONNECT"
    private static let chunkedCoding: StaticString = "chunked"

    private static let candidateContentLength: UInt8 = 1
    private static let candidateTransferEncoding: UInt8 = 2
    private static let candidateDate: UInt8 = 4

    /// Heads, trailer sections and chunk-size lines longer than this stop the framing.
    static let maximumHeadLength = 64 * 1024
    let isResponse: Bool
    private(set) var state: State
    /// Bytes of the current head (or trailer section, or chunk-size line) so far.
    private(set) var headBytes = 0
    /// No head has completed yet: a bad request line then means "not HTTP" rather than "malformed".
    private(set) var isFirstMessage = true

    // Start line.
    private var matchIndex = 0
    private var methodLength = 0
    private var methodCandidates: UInt8 = 0
    private var targetSeen = false
    private(set) var isHeadRequest = false
    private(set) var isConnectRequest = false
    /// The x of HTTP/1.x.
    private(set) var minorVersion: UInt8 = 0
    private(set) var status: UInt16 = 0

    // The field line being read.
    private var inTrailers = false
    private var field = Field.other
    private var nameLength = 0
    private var nameCandidates: UInt8 = 0

    // Content-Length (RFC 9110 §8.6), possibly a list of identical values (RFC 9112 §6.3 item 5).
    private(set) var hasContentLength = false
    private(set) var contentLength: UInt64 = 0
    private var listValue: UInt64 = 0
    /// 0: before a member's first digit, 1: in its digits, 2: in whitespace after them.
    private var listPhase: UInt8 = 0

    // Transfer-Encoding (RFC 9112 §6.1): only whether the final coding is chunked matters.
    private(set) var hasTransferEncoding = false
    private(set) var finalCodingIsChunked = false
    private var codingSeen = false
    private var codingLength = 0
    private var codingMatches = true
    private var codingAfterToken = false
    private var codingInParameters = false
    private var codingInQuotes = false
    private var codingEscape = false

    // Bodies.
    private var remaining: UInt64 = 0
    private var chunkDigits = 0

    init(isResponse: Bool) {
        self.isResponse = isResponse
        state = isResponse ? .responseVersion : .requestStart
    }

    /// Nothing of the next message has been consumed (not even an empty line before a request).
    var isAtMessageStart: Bool {
        headBytes == 0 && state == (isResponse ? .responseVersion : .requestStart)
    }

    /// Frames a connection taken up after its first message (a broken request is then
    /// `.malformedRequest`, not `.notHTTP`).
    mutating func continueConnection() {
        isFirstMessage = false
    }

    /// Ready for the next message: a final response or request is complete, or an interim
    /// (1xx) response is, and the final one for the same request follows.
    mutating func startMessage() {
        state = isResponse ? .responseVersion : .requestStart
        headBytes = 0
        matchIndex = 0
        methodLength = 0
        methodCandidates = 0
        targetSeen = false
        isHeadRequest = false
        isConnectRequest = false
        minorVersion = 0
        status = 0
        inTrailers = false
        hasContentLength = false
        contentLength = 0
        hasTransferEncoding = false
        finalCodingIsChunked = false
        remaining = 0
    }

    /// After `.headComplete`: a body of `length` bytes follows. Zero is the caller's to handle
    /// (the message is complete at the head's end).
    mutating func startBody(length: UInt64) {
        precondition(state == .awaitingBody && length > 0, "startBody outside awaitingBody")
        remaining = length
        state = .body
    }

    /// After `.headComplete`: a chunked body follows.
    mutating func startChunkedBody() {
        precondition(state == .awaitingBody, "startChunkedBody outside awaitingBody")
        startChunkLine()
    }

    private var malformed: HTTPStop { isResponse ? .malformedResponse : .malformedRequest }

    /// A bad start line of the very first request says the connection is not HTTP at all.
    private var badStartLine: HTTPStop {
        isResponse ? .malformedResponse : isFirstMessage ? .notHTTP : .malformedRequest
    }

    /// Consumes `bytes[start...]` until the end of the buffer or an event. Returns the index of
    /// the next unconsumed byte (for `.failed`, the offending byte's index) and the event.
    ///
    /// When `masked` is not nil (responses), every byte of a `Date:` value in a head is written
    /// there as `-` at the same index; other bytes are left as the caller copied them.
    mutating func run(
        _ bytes: UnsafeRawBufferPointer, from start: Int, masked: UnsafeMutableRawPointer?
    ) -> (Int, FramerEvent) {
        var index = start
        let count = bytes.count
        while index < count {
            // Bodies in bulk: no per-byte work.
            if state == .body || state == .chunkData {
                let available = UInt64(count - index)
                let taken = min(available, remaining)
                index += Int(taken)
                remaining -= taken
                guard remaining == 0 else { continue }
                if state == .body {
                    startMessage()
                    return (index, .messageComplete)
                }
                state = .chunkDataCR
                headBytes = 0
                continue
            }
            // Runs of bytes that need no decision one by one — a plain field value (the bulk of
            // most heads), a request-target, a reason phrase — are scanned in a tight loop. The
            // byte that ends the run (or exceeds the head limit) goes through `step`.
            if state == .fieldValue && (field == .other || field == .date) || state == .target || state == .reason
                || state == .fieldName && nameCandidates == 0
            {
                let limit = min(count, index + (Self.maximumHeadLength - headBytes))
                let start = index
                if state == .fieldName {
                    while index < limit && ASCII.isToken(bytes[index]) { index += 1 }
                } else if state == .target {
                    while index < limit && ASCII.isTargetByte(bytes[index]) { index += 1 }
                    targetSeen = targetSeen || index > start
                } else {
                    while index < limit && ASCII.isFieldByte(bytes[index]) { index += 1 }
                    if field == .date, let masked, state == .fieldValue {
                        (masked + start).initializeMemory(as: UInt8.self, repeating: ASCII.dash, count: index - start)
                    }
                }
                headBytes += index - start
                guard index < count else { break }
            }
            if headBytes >= Self.maximumHeadLength { return (index, .failed(.headTooLarge)) }
            headBytes += 1
            if let event = step(bytes[index], at: index, masked: masked) {
                if case .failed = event { return (index, event) }
                return (index + 1, event)
            }
            index += 1
        }
        return (index, .needMore)
    }

    /// One byte of a head, trailer section or chunk line. Nil to go on.
    @inline(__always)
    private mutating func step(_ byte: UInt8, at index: Int, masked: UnsafeMutableRawPointer?) -> FramerEvent? {
        switch state {
        case .requestStart:
            // RFC 9112 §2.2: a server should ignore empty lines before a request line (some
            // clients send CRLF after a POST body).
            if byte == ASCII.lf { return nil }
            if byte == ASCII.cr {
                state = .requestStartCR
                return nil
            }
            guard ASCII.isToken(byte) else { return .failed(badStartLine) }
            methodLength = 0
            methodCandidates = 3
            matchMethod(byte)
            state = .method
        case .requestStartCR:
            guard byte == ASCII.lf else { return .failed(badStartLine) }
            state = .requestStart
        case .method:
            if byte == ASCII.space {
                isHeadRequest = methodCandidates & 1 != 0 && methodLength == Self.headMethod.utf8CodeUnitCount
                isConnectRequest = methodCandidates & 2 != 0 && methodLength == Self.connectMethod.utf8CodeUnitCount
                targetSeen = false
                state = .target
            } else {
                guard ASCII.isToken(byte) else { return .failed(badStartLine) }
                matchMethod(byte)
            }
        case .target:
            if byte == ASCII.space {
                guard targetSeen else { return .failed(badStartLine) }
                matchIndex = 0
                state = .requestVersion
            } else {
                guard ASCII.isTargetByte(byte) else { return .failed(badStartLine) }
                targetSeen = true
            }
        case .requestVersion:
            guard let complete = matchVersion(byte) else { return .failed(badStartLine) }
            if complete { return endStartLine(byte) }
        case .responseVersion:
            guard let complete = matchVersion(byte) else { return .failed(badStartLine) }
            if complete {
                guard byte == ASCII.space else { return .failed(badStartLine) }
                matchIndex = 0
                status = 0
                state = .statusCode
            }
        case .statusCode:
            guard let digit = ASCII.digit(byte) else { return .failed(badStartLine) }
            status = status * 10 + UInt16(digit)
            matchIndex += 1
            if matchIndex == 3 {
                // RFC 9110 §15: values outside 100...599 are invalid.
                guard status >= 100 && status <= 599 else { return .failed(badStartLine) }
                state = .statusAfterCode
            }
        case .statusAfterCode:
            if byte == ASCII.space {
                state = .reason
            } else {
                return endStartLine(byte)
            }
        case .reason:
            if byte == ASCII.cr || byte == ASCII.lf { return endStartLine(byte) }
            guard ASCII.isFieldByte(byte) else { return .failed(badStartLine) }
        case .startLineCR:
            guard byte == ASCII.lf else { return .failed(badStartLine) }
            state = .fieldLineStart

        case .fieldLineStart:
            if byte == ASCII.cr {
                state = .sectionEndCR
            } else if byte == ASCII.lf {
                return endSection()
            } else {
                // Whitespace here is obs-fold (RFC 9112 §5.2) or whitespace after the start
                // line (§2.2); ':' would be an empty name. All are refused.
                guard ASCII.isToken(byte) else { return .failed(malformed) }
                nameLength = 0
                // Trailers cannot change framing and are not masked: no name matters there.
                nameCandidates = inTrailers ? 0 : Self.candidateContentLength | Self.candidateTransferEncoding
                if isResponse && !inTrailers { nameCandidates |= Self.candidateDate }
                matchName(byte)
                state = .fieldName
            }
        case .fieldName:
            if byte == ASCII.colon {
                beginValue()
                state = .fieldValueLeadingSpace
            } else {
                // Including SP: RFC 9112 §5.1 forbids whitespace between name and colon.
                guard ASCII.isToken(byte) else { return .failed(malformed) }
                matchName(byte)
            }
        case .fieldValueLeadingSpace:
            if ASCII.isWhitespace(byte) { return nil }
            if byte == ASCII.cr || byte == ASCII.lf { return endFieldLine(byte) }
            guard ASCII.isFieldByte(byte) else { return .failed(malformed) }
            state = .fieldValue
            return valueByte(byte, at: index, masked: masked)
        case .fieldValue:
            if byte == ASCII.cr || byte == ASCII.lf { return endFieldLine(byte) }
            // A bare CR is refused too (RFC 9112 §2.2): it is not a field byte.
            guard ASCII.isFieldByte(byte) else { return .failed(malformed) }
            return valueByte(byte, at: index, masked: masked)
        case .fieldLineCR:
            guard byte == ASCII.lf else { return .failed(malformed) }
            state = .fieldLineStart
        case .sectionEndCR:
            guard byte == ASCII.lf else { return .failed(malformed) }
            return endSection()

        case .awaitingBody, .body, .chunkData:
            // `run` never steps in these states; a tracker that did not choose a framing is a bug.
            preconditionFailure("MessageFramer stepped in state \(state)")

        case .chunkSize:
            if let digit = ASCII.hexDigit(byte) {
                guard remaining >> 60 == 0 else { return .failed(.numberTooLarge) }
                remaining = remaining << 4 | UInt64(digit)
                chunkDigits += 1
                return nil
            }
            guard chunkDigits > 0 else { return .failed(malformed) }
            return afterChunkSize(byte)
        case .chunkSizeSpace:
            // BWS before a chunk extension (RFC 9112 §7.1.1).
            if ASCII.isWhitespace(byte) { return nil }
            return afterChunkSize(byte)
        case .chunkExtension:
            // Extensions are ignored, as RFC 9112 §7.1.1 lets a recipient do.
            if byte == ASCII.cr || byte == ASCII.lf { return afterChunkSize(byte) }
            guard ASCII.isFieldByte(byte) else { return .failed(malformed) }
        case .chunkSizeCR:
            guard byte == ASCII.lf else { return .failed(malformed) }
            endChunkLine()
        case .chunkDataCR:
            if byte == ASCII.cr {
                state = .chunkDataLF
            } else {
                guard byte == ASCII.lf else { return .failed(malformed) }
                startChunkLine()
            }
        case .chunkDataLF:
            guard byte == ASCII.lf else { return .failed(malformed) }
            startChunkLine()
        }
        return nil
    }

    // MARK: Start line

    /// One byte of `HTTP/1.x` (either start line's version): nil when it does not fit, false
    /// while the version is still coming, true once it is complete (and `byte` follows it).
    private mutating func matchVersion(_ byte: UInt8) -> Bool? {
        if matchIndex < Self.versionPrefix.utf8CodeUnitCount {
            guard byte == Self.versionPrefix.byte(matchIndex) else { return nil }
            matchIndex += 1
            return false
        }
        if matchIndex == Self.versionPrefix.utf8CodeUnitCount {
            guard let digit = ASCII.digit(byte) else { return nil }
            minorVersion = digit
            matchIndex += 1
            return false
        }
        return true
    }

    private mutating func matchMethod(_ byte: UInt8) {
        // Methods are case-sensitive (RFC 9110 §9.1).
        if methodCandidates & 1 != 0
            && !(methodLength < Self.headMethod.utf8CodeUnitCount && Self.headMethod.byte(methodLength) == byte)
        {
            methodCandidates &= ~1
        }
        if methodCandidates & 2 != 0
            && !(methodLength < Self.connectMethod.utf8CodeUnitCount && Self.connectMethod.byte(methodLength) == byte)
        {
            methodCandidates &= ~2
        }
        if methodLength < Int.max { methodLength += 1 }
    }

    /// The byte after a complete start line (version, or status code, or reason phrase).
    private mutating func endStartLine(_ byte: UInt8) -> FramerEvent? {
        if byte == ASCII.cr {
            state = .startLineCR
        } else if byte == ASCII.lf {
            state = .fieldLineStart
        } else {
            return .failed(badStartLine)
        }
        return nil
    }

    // MARK: Field lines

    @inline(__always)
    private mutating func matchName(_ byte: UInt8) {
        let lower = ASCII.lowercased(byte)
        if nameCandidates & Self.candidateContentLength != 0
            && !Self.matches(Self.contentLengthName, nameLength, lower)
        {
            nameCandidates &= ~Self.candidateContentLength
        }
        if nameCandidates & Self.candidateTransferEncoding != 0
            && !Self.matches(Self.transferEncodingName, nameLength, lower)
        {
            nameCandidates &= ~Self.candidateTransferEncoding
        }
        if nameCandidates & Self.candidateDate != 0 && !Self.matches(Self.dateName, nameLength, lower) {
            nameCandidates &= ~Self.candidateDate
        }
        if nameCandidates != 0 { nameLength += 1 }
    }

    @inline(__always)
    private static func matches(_ name: StaticString, _ index: Int, _ lower: UInt8) -> Bool {
        index < name.utf8CodeUnitCount && name.byte(index) == lower
    }

    private mutating func beginValue() {
        field = .other
        if nameCandidates & Self.candidateContentLength != 0 && nameLength == Self.contentLengthName.utf8CodeUnitCount {
            field = .contentLength
            listValue = 0
            listPhase = 0
        } else if nameCandidates & Self.candidateTransferEncoding != 0
            && nameLength == Self.transferEncodingName.utf8CodeUnitCount
        {
            field = .transferEncoding
            hasTransferEncoding = true
            beginCoding()
        } else if nameCandidates & Self.candidateDate != 0 && nameLength == Self.dateName.utf8CodeUnitCount {
            field = .date
        }
    }

    /// One byte of a field value, after any leading whitespace (not CR or LF).
    @inline(__always)
    private mutating func valueByte(_ byte: UInt8, at index: Int, masked: UnsafeMutableRawPointer?) -> FramerEvent? {
        switch field {
        case .other:
            return nil
        case .date:
            // The one nondeterminism a replay forgives (RFC 9110 §6.6.1): mask it, trailing
            // whitespace included, so only the value's length is compared.
            masked?.storeBytes(of: ASCII.dash, toByteOffset: index, as: UInt8.self)
            return nil
        case .contentLength:
            return contentLengthByte(byte)
        case .transferEncoding:
            codingByte(byte)
            return nil
        }
    }

    /// The CR or LF that ends a field line.
    private mutating func endFieldLine(_ byte: UInt8) -> FramerEvent? {
        switch field {
        case .contentLength:
            guard listPhase != 0 else { return .failed(malformed) }
            if let stop = commitContentLength() { return .failed(stop) }
        case .transferEncoding:
            endCoding()
        case .other, .date:
            break
        }
        field = .other
        state = byte == ASCII.cr ? .fieldLineCR : .fieldLineStart
        return nil
    }

    /// The empty line after the head or the trailer section.
    private mutating func endSection() -> FramerEvent {
        if inTrailers {
            startMessage()
            return .messageComplete
        }
        isFirstMessage = false
        state = .awaitingBody
        return .headComplete
    }

    // MARK: Content-Length

    private mutating func contentLengthByte(_ byte: UInt8) -> FramerEvent? {
        if let digit = ASCII.digit(byte) {
            // "1 2" is not a number.
            guard listPhase != 2 else { return .failed(malformed) }
            let (times10, overflow) = listValue.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflow && !carry else { return .failed(.numberTooLarge) }
            listValue = sum
            listPhase = 1
        } else if ASCII.isWhitespace(byte) {
            if listPhase == 1 { listPhase = 2 }
        } else if byte == ASCII.comma {
            // "42, 42" is one valid value (RFC 9112 §6.3 item 5); an empty member is not.
            guard listPhase != 0 else { return .failed(malformed) }
            if let stop = commitContentLength() { return .failed(stop) }
            listValue = 0
            listPhase = 0
        } else {
            return .failed(malformed)
        }
        return nil
    }

    private mutating func commitContentLength() -> HTTPStop? {
        if hasContentLength && contentLength != listValue { return .conflictingContentLength }
        hasContentLength = true
        contentLength = listValue
        return nil
    }

    // MARK: Transfer-Encoding

    private mutating func beginCoding() {
        codingSeen = false
        codingLength = 0
        codingMatches = true
        codingAfterToken = false
        codingInParameters = false
        codingInQuotes = false
        codingEscape = false
    }

    /// One byte of a transfer-coding list: `token *( OWS ";" OWS param )` members separated by
    /// commas, parameters possibly quoted (RFC 9110 §5.6). Lenient beyond that: anything odd
    /// makes the member "not chunked", which stops the framing anyway.
    private mutating func codingByte(_ byte: UInt8) {
        if codingInQuotes {
            if codingEscape {
                codingEscape = false
            } else if byte == ASCII.backslash {
                codingEscape = true
            } else if byte == ASCII.quote {
                codingInQuotes = false
            }
            return
        }
        switch byte {
        case ASCII.comma:
            endCoding()
        case ASCII.semicolon:
            codingSeen = true
            codingInParameters = true
        case ASCII.space, ASCII.tab:
            if codingLength > 0 { codingAfterToken = true }
        default:
            codingSeen = true
            if codingInParameters {
                if byte == ASCII.quote { codingInQuotes = true }
                return
            }
            if codingAfterToken || !Self.matches(Self.chunkedCoding, codingLength, ASCII.lowercased(byte)) {
                codingMatches = false
            }
            if codingLength < Int.max { codingLength += 1 }
        }
    }

    /// The end of one list member (a comma, or the end of the field line). Empty members do not
    /// count (RFC 9110 §5.6.1).
    private mutating func endCoding() {
        if codingSeen {
            finalCodingIsChunked = codingMatches && codingLength == Self.chunkedCoding.utf8CodeUnitCount
        }
        beginCoding()
    }

    // MARK: Chunked body

    private mutating func startChunkLine() {
        state = .chunkSize
        headBytes = 0
        remaining = 0
        chunkDigits = 0
    }

    /// The first byte after a chunk size's digits, or after whitespace that followed them.
    private mutating func afterChunkSize(_ byte: UInt8) -> FramerEvent? {
        switch byte {
        case ASCII.space, ASCII.tab:
            state = .chunkSizeSpace
        case ASCII.semicolon:
            state = .chunkExtension
        case ASCII.cr:
            state = .chunkSizeCR
        case ASCII.lf:
            endChunkLine()
        default:
            return .failed(malformed)
        }
        return nil
    }

    /// The LF that ends a chunk-size line: data, or after the last chunk (size 0) the trailer
    /// section, which is read like a head but means nothing to framing and is never masked.
    private mutating func endChunkLine() {
        if remaining == 0 {
            inTrailers = true
            headBytes = 0
            state = .fieldLineStart
        } else {
            state = .chunkData
        }
    }
}
