/// Resuming an open response from where its client stopped, instead of regenerating it
/// (docs/replay.md, "Range resume").
///
/// A replay normally asks the new guest for the whole open response again and checks every byte
/// the client already has; its cost grows with the bytes already sent. When the response is a
/// `GET`'s `200` with a strong validator and `Accept-Ranges: bytes`, and is neither compressed nor
/// chunked, the same representation can be asked for from byte N on: the logged request plus
/// `Range: bytes=N-` and `If-Range: <validator>` (RFC 9110 §14.2, §13.1.5). A `206` whose
/// `Content-Range` and validator match carries exactly the bytes N… of the representation the
/// client is reading, so it is spliced at N without a check. A `200` (the representation changed,
/// or the range was ignored) goes back to regenerate-and-check, which resets the connection
/// unless the bytes match; anything else resets it. Never a splice of other bytes.
///
/// Pure: the relay hands it the heads it kept and the new guest's answer, and does what it says.
public struct RangeResume: Sendable, Equatable {
    /// What `If-Range` carries.
    public enum Validator: Sendable, Equatable {
        /// A strong entity tag, quotes included.
        case entityTag([UInt8])
        /// A `Last-Modified` date that is a strong validator (RFC 9110 §8.8.2.2: at least a
        /// second before the response's `Date`), as the response gave it.
        case lastModified([UInt8])
    }

    /// The request to send the new guest in place of the logged request head.
    public let request: [UInt8]
    /// How many logged client bytes `request` stands for: the logged request head.
    public let loggedRequestLength: Int
    /// The original response head's length.
    public let responseHeadLength: Int
    public let validator: Validator
    /// The first body byte asked for (the first the client has not acknowledged).
    public let resumeAt: UInt64
    /// The whole body's length (the original `Content-Length`).
    public let total: UInt64

    /// The longest head read (a request's or an answer's): keep at least this many bytes of one.
    public static let maximumHeadLength = MessageHead.maximumLength

    /// Why a response cannot be resumed: the reason a replay regenerates it instead.
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case requestHead, notGET, requestHasBodyOrRange
        case responseHead, notOK, noLength, encoded, noRanges, noStrongValidator
        case outsideBody

        public var description: String {
            switch self {
            case .requestHead: "the request head is not readable"
            case .notGET: "the request is not an HTTP/1.1 GET"
            case .requestHasBodyOrRange: "the request has a body, a range or a condition on one"
            case .responseHead: "the response head is not readable"
            case .notOK: "the response is not a 200"
            case .noLength: "the response has no single Content-Length"
            case .encoded: "the response is chunked or content-coded"
            case .noRanges: "the server did not say Accept-Ranges: bytes"
            case .noStrongValidator: "the response has no strong validator"
            case .outsideBody: "the client is not inside the body"
            }
        }
    }

    /// A plan to resume the response whose first bytes are `responseHead` (at least its head)
    /// after the first `clientHas` bytes of it, which the client acknowledged, for the request
    /// that starts `request` (the logged client bytes from its start: its head and maybe more).
    public static func plan(
        request: UnsafeRawBufferPointer, responseHead: UnsafeRawBufferPointer, clientHas: UInt64
    ) -> Result<RangeResume, Refusal> {
        guard let requestHead = MessageHead(request) else { return .failure(.requestHead) }
        guard requestHead.startLine.starts(with: Array("GET ".utf8)), requestHead.startLine.count > 13,
            requestHead.startLine.suffix(9).elementsEqual(" HTTP/1.1".utf8)
        else { return .failure(.notGET) }
        let refused = ["range", "if-range", "content-length", "transfer-encoding"]
        guard !refused.contains(where: { !requestHead.values($0).isEmpty }) else {
            return .failure(.requestHasBodyOrRange)
        }
        guard let head = MessageHead(responseHead) else { return .failure(.responseHead) }
        guard head.status == 200 else { return .failure(.notOK) }
        guard let lengthField = head.single("content-length"), let total = MessageHead.decimal(lengthField) else {
            return .failure(.noLength)
        }
        guard head.values("transfer-encoding").isEmpty, head.values("content-range").isEmpty,
            head.values("content-encoding").allSatisfy({
                String(decoding: $0, as: UTF8.self).lowercased() == "identity"
            })
        else { return .failure(.encoded) }
        guard head.list("accept-ranges", contains: "bytes") else { return .failure(.noRanges) }
        guard let validator = strongValidator(head) else { return .failure(.noStrongValidator) }
        guard clientHas > UInt64(head.length), clientHas - UInt64(head.length) < total else {
            return .failure(.outsideBody)
        }
        let resumeAt = clientHas - UInt64(head.length)
        var rewritten = Array(UnsafeRawBufferPointer(rebasing: request[..<(requestHead.length - 2)]))
        rewritten += Array("Range: bytes=\(resumeAt)-\r\nIf-Range: ".utf8)
        switch validator {
        case .entityTag(let tag): rewritten += tag
        case .lastModified(let date): rewritten += date
        }
        rewritten += Array("\r\n\r\n".utf8)
        return .success(
            RangeResume(
                request: rewritten, loggedRequestLength: requestHead.length, responseHeadLength: head.length,
                validator: validator, resumeAt: resumeAt, total: total))
    }

    /// A strong entity tag, else a `Last-Modified` that is strong by §8.8.2.2.
    private static func strongValidator(_ head: MessageHead) -> Validator? {
        let tags = head.values("etag")
        if tags.count == 1, isStrongEntityTag(tags[0]) { return .entityTag(tags[0]) }
        guard tags.isEmpty, let modified = head.single("last-modified"), let date = head.single("date"),
            let modifiedAt = HTTPDate.seconds(modified), let dated = HTTPDate.seconds(date), modifiedAt + 1 <= dated
        else { return nil }
        return .lastModified(modified)
    }

    /// `"etagc*"` (RFC 9110 §8.8.3): no `W/`, no quote inside.
    static func isStrongEntityTag(_ value: [UInt8]) -> Bool {
        value.count >= 2 && value.first == ASCII.quote && value.last == ASCII.quote
            && value.dropFirst().dropLast().allSatisfy { $0 == 0x21 || ($0 >= 0x23 && $0 != ASCII.delete) }
    }

    /// What the new guest's answer to `request` says, from its first bytes.
    public enum Answer: Equatable {
        /// Its head has not ended yet.
        case needMore
        /// A `206` for exactly the bytes asked for, of the same representation: its body (after
        /// `headLength` bytes) is the original body from `resumeAt` on.
        case resumes(headLength: Int)
        /// A `200`: the server sent the whole representation (changed, or the range ignored);
        /// the replay regenerates and checks it as it would have without the range.
        case regenerate
        /// Anything else can never be the bytes the client is reading: `reason` says what came.
        case differs(reason: String)
    }

    /// Reads the new guest's answer from its first `bytes`.
    public func check(_ bytes: UnsafeRawBufferPointer) -> Answer {
        guard MessageHead.end(in: bytes) != nil else {
            return bytes.count >= MessageHead.maximumLength ? .differs(reason: "its head is too long") : .needMore
        }
        guard let head = MessageHead(bytes) else { return .differs(reason: "its head is not readable") }
        if head.status == 200 { return .regenerate }
        guard head.status == 206 else {
            return .differs(reason: "it answered \(String(decoding: head.startLine.prefix(64), as: UTF8.self))")
        }
        let range = Array("bytes \(resumeAt)-\(total - 1)/\(total)".utf8)
        guard head.single("content-range") == range else { return .differs(reason: "its Content-Range differs") }
        guard head.values("content-length").allSatisfy({ MessageHead.decimal($0) == total - resumeAt }),
            head.values("transfer-encoding").isEmpty,
            head.values("content-encoding").allSatisfy({
                String(decoding: $0, as: UTF8.self).lowercased() == "identity"
            })
        else { return .differs(reason: "its body is framed or coded otherwise") }
        switch validator {
        case .entityTag(let tag):
            guard head.single("etag") == tag else { return .differs(reason: "its ETag differs") }
        case .lastModified(let date):
            guard head.values("last-modified").allSatisfy({ $0 == date }), head.values("etag").isEmpty else {
                return .differs(reason: "its validators differ")
            }
        }
        return .resumes(headLength: head.length)
    }
}

/// IMF-fixdate (RFC 9110 §5.6.7), the one HTTP date form a sender generates.
enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

    /// Seconds since 1970 of `Sun, 06 Nov 1994 08:49:37 GMT`, or nil for any other form.
    static func seconds(_ value: [UInt8]) -> Int64? {
        guard value.count == 29 else { return nil }
        let text = String(decoding: value, as: UTF8.self)
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0].count == 4, parts[0].hasSuffix(","), days.contains(String(parts[0].prefix(3))),
            parts[5] == "GMT", let month = months.firstIndex(of: String(parts[2])),
            let day = Int64(parts[1]), parts[1].count == 2, let year = Int64(parts[3]), parts[3].count == 4
        else { return nil }
        let clock = parts[4].split(separator: ":", omittingEmptySubsequences: false)
        guard parts[4].count == 8, clock.count == 3, let hour = Int64(clock[0]), let minute = Int64(clock[1]),
            let second = Int64(clock[2]), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        return daysFromCivil(year: year, month: Int64(month) + 1, day: day) * 86_400 + hour * 3600 + minute * 60
            + second
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (the well-known era arithmetic).
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let shifted = month <= 2 ? year - 1 : year
        let era = (shifted >= 0 ? shifted : shifted - 399) / 400
        let yearOfEra = shifted - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
