import SeededRandom
import XCTest

@testable import FTVMHTTP

/// The range decision of a replay (`RangeResume`): which open responses may be resumed from the
/// byte their client stopped at, the request that asks for it, and which answers may be spliced.
final class RangeResumeTests: XCTestCase {
    private let get = "GET /big.bin HTTP/1.1\r\nHost: service\r\nAccept: */*\r\n\r\n"
    /// nginx's head for a static file: a strong ETag, Last-Modified, byte ranges.
    private let nginx =
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\n"
        + "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n"
        + "Last-Modified: Sat, 05 Dec 2026 08:00:00 GMT\r\nConnection: keep-alive\r\n"
        + "ETag: \"6932a380-f4240\"\r\nAccept-Ranges: bytes\r\n\r\n"

    private func plan(
        _ request: String? = nil, _ response: String? = nil, clientHas: UInt64? = nil
    )
        -> Result<RangeResume, RangeResume.Refusal>
    {
        let response = response ?? nginx
        let request = Array((request ?? get).utf8)
        let head = Array(response.utf8)
        return request.withUnsafeBytes { request in
            head.withUnsafeBytes { head in
                RangeResume.plan(
                    request: request, responseHead: head, clientHas: clientHas ?? UInt64(response.utf8.count + 500_000))
            }
        }
    }

    private func refusal(
        _ request: String? = nil, _ response: String? = nil, clientHas: UInt64? = nil
    )
        -> RangeResume.Refusal?
    {
        if case .failure(let refusal) = plan(request, response, clientHas: clientHas) { return refusal }
        return nil
    }

    /// nginx's head with `field` (a whole line, or a name to drop) changed.
    private func nginx(replacing name: String, with line: String?) -> String {
        var lines = nginx.components(separatedBy: "\r\n").filter { !$0.lowercased().hasPrefix(name.lowercased() + ":") }
        if let line { lines.insert(line, at: 2) }
        return lines.joined(separator: "\r\n")
    }

    // MARK: Plans

    func testAStaticFileIsResumedWithARangeAndItsETag() throws {
        let resume = try plan().get()
        XCTAssertEqual(resume.resumeAt, 500_000)
        XCTAssertEqual(resume.total, 1_000_000)
        XCTAssertEqual(resume.validator, .entityTag(Array("\"6932a380-f4240\"".utf8)))
        XCTAssertEqual(resume.responseHeadLength, nginx.utf8.count)
        XCTAssertEqual(resume.loggedRequestLength, get.utf8.count)
        XCTAssertEqual(
            String(decoding: resume.request, as: UTF8.self),
            "GET /big.bin HTTP/1.1\r\nHost: service\r\nAccept: */*\r\n"
                + "Range: bytes=500000-\r\nIf-Range: \"6932a380-f4240\"\r\n\r\n")
    }

    func testOnlyTheFirstRequestHeadIsRewritten() throws {
        let pipelined = get + "GET /next HTTP/1.1\r\nHost: service\r\n\r\n"
        let resume = try plan(pipelined).get()
        XCTAssertEqual(resume.loggedRequestLength, get.utf8.count)
        XCTAssertFalse(String(decoding: resume.request, as: UTF8.self).contains("/next"))
    }

    func testFieldNamesAnyCaseAndValuesWithWhitespace() throws {
        let response =
            "HTTP/1.1 200 OK\r\ncontent-length:1000000\r\nETAG: \t\"x\" \r\naccept-ranges: none, Bytes\r\n\r\n"
        XCTAssertEqual(try plan(nil, response).get().validator, .entityTag(Array("\"x\"".utf8)))
    }

    func testALastModifiedASecondBeforeTheDateIsAStrongValidator() throws {
        let response = nginx(replacing: "etag", with: nil)
        XCTAssertEqual(
            try plan(nil, response).get().validator, .lastModified(Array("Sat, 05 Dec 2026 08:00:00 GMT".utf8)))
        let sameSecond = nginx(replacing: "etag", with: nil).replacingOccurrences(
            of: "Sat, 05 Dec 2026 08:00:00 GMT", with: "Sun, 06 Dec 2026 12:00:00 GMT")
        XCTAssertEqual(refusal(nil, sameSecond), .noStrongValidator, "RFC 9110 §8.8.2.2: weak within a second")
        let obsolete = nginx(replacing: "etag", with: nil).replacingOccurrences(
            of: "Sat, 05 Dec 2026 08:00:00 GMT", with: "Saturday, 05-Dec-26 08:00:00 GMT")
        XCTAssertEqual(refusal(nil, obsolete), .noStrongValidator, "only IMF-fixdate is read")
    }

    func testResponsesThatCannotBeResumed() {
        XCTAssertEqual(refusal(nil, nginx(replacing: "etag", with: "ETag: W/\"6932a380-f4240\"")), .noStrongValidator)
        XCTAssertEqual(
            refusal(
                nil,
                nginx(replacing: "etag", with: "ETag: \"a\"\r\nETag: \"b\"").replacingOccurrences(
                    of: "Last-Modified", with: "X-Modified")), .noStrongValidator)
        XCTAssertEqual(refusal(nil, nginx(replacing: "etag", with: "ETag: unquoted")), .noStrongValidator)
        XCTAssertEqual(refusal(nil, nginx(replacing: "accept-ranges", with: nil)), .noRanges)
        XCTAssertEqual(refusal(nil, nginx(replacing: "accept-ranges", with: "Accept-Ranges: none")), .noRanges)
        XCTAssertEqual(refusal(nil, nginx(replacing: "content-encoding", with: "Content-Encoding: gzip")), .encoded)
        XCTAssertNil(refusal(nil, nginx(replacing: "content-encoding", with: "Content-Encoding: identity")))
        XCTAssertEqual(
            refusal(nil, nginx(replacing: "transfer-encoding", with: "Transfer-Encoding: chunked")), .encoded)
        XCTAssertEqual(refusal(nil, nginx(replacing: "content-length", with: nil)), .noLength)
        XCTAssertEqual(
            refusal(
                nil, nginx(replacing: "content-length", with: "Content-Length: 1000000\r\nContent-Length: 1000000")),
            .noLength)
        XCTAssertEqual(refusal(nil, nginx(replacing: "content-length", with: "Content-Length: +1000000")), .noLength)
        XCTAssertEqual(refusal(nil, nginx.replacingOccurrences(of: "200 OK", with: "206 Partial Content")), .notOK)
        XCTAssertEqual(refusal(nil, nginx.replacingOccurrences(of: "200 OK", with: "203 OK")), .notOK)
        XCTAssertEqual(refusal(nil, String(nginx.dropLast(2))), .responseHead, "the head has not ended")
        XCTAssertEqual(
            refusal(nil, nginx.replacingOccurrences(of: "Connection: keep-alive", with: "X-Folded: a\r\n b")),
            .responseHead, "obs-fold")
        XCTAssertEqual(refusal(nil, nginx.replacingOccurrences(of: "\r\nServer", with: "\nServer")), .responseHead)
    }

    func testRequestsThatCannotBeResumed() {
        XCTAssertEqual(refusal(get.replacingOccurrences(of: "GET", with: "HEAD")), .notGET)
        XCTAssertEqual(refusal("POST /big.bin HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), .notGET)
        XCTAssertEqual(refusal(get.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0")), .notGET)
        XCTAssertEqual(refusal(get.replacingOccurrences(of: "Accept", with: "range")), .requestHasBodyOrRange)
        XCTAssertEqual(refusal(get.replacingOccurrences(of: "Accept", with: "If-Range")), .requestHasBodyOrRange)
        XCTAssertEqual(
            refusal(get.replacingOccurrences(of: "Accept: */*", with: "Content-Length: 3")), .requestHasBodyOrRange)
        XCTAssertEqual(refusal(String(get.dropLast(2))), .requestHead)
    }

    func testTheClientMustBeInsideTheBody() {
        let head = UInt64(nginx.utf8.count)
        XCTAssertEqual(refusal(clientHas: head), .outsideBody, "nothing of the body yet")
        XCTAssertEqual(refusal(clientHas: head - 10), .outsideBody)
        XCTAssertEqual(refusal(clientHas: head + 1_000_000), .outsideBody, "the body is all there")
        XCTAssertEqual(try plan(clientHas: head + 1).get().resumeAt, 1)
        XCTAssertEqual(try plan(clientHas: head + 999_999).get().resumeAt, 999_999)
    }

    // MARK: Answers

    private func answer(_ text: String, to resume: RangeResume) -> RangeResume.Answer {
        Array(text.utf8).withUnsafeBytes { resume.check($0) }
    }

    private let partial =
        "HTTP/1.1 206 Partial Content\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 12:00:05 GMT\r\n"
        + "Content-Type: application/octet-stream\r\nContent-Length: 500000\r\n"
        + "Last-Modified: Sat, 05 Dec 2026 08:00:00 GMT\r\nConnection: keep-alive\r\n"
        + "ETag: \"6932a380-f4240\"\r\nContent-Range: bytes 500000-999999/1000000\r\n\r\n"

    func testAMatching206Resumes() throws {
        let resume = try plan().get()
        XCTAssertEqual(answer(partial + "body bytes", to: resume), .resumes(headLength: partial.utf8.count))
        XCTAssertEqual(answer(String(partial.dropLast(1)), to: resume), .needMore)
        XCTAssertEqual(answer("HTTP/1.1 2", to: resume), .needMore)
        XCTAssertEqual(answer(nginx.replacingOccurrences(of: "Date: Sun", with: "Date: Sun"), to: resume), .regenerate)
    }

    func testAnswersThatAreNeverSpliced() throws {
        let resume = try plan().get()
        let cases: [(String, String)] = [
            ("bytes 500000-999999/1000000", "bytes 500001-999999/1000000"),
            ("bytes 500000-999999/1000000", "bytes 500000-999998/1000000"),
            ("bytes 500000-999999/1000000", "bytes 500000-999999/1000001"),
            ("bytes 500000-999999/1000000", "bytes 500000-999999/*"),
            ("Content-Length: 500000", "Content-Length: 500001"),
            ("Content-Length: 500000", "Transfer-Encoding: chunked"),
            ("Content-Length: 500000", "Content-Length: 500000\r\nContent-Encoding: gzip"),
            ("ETag: \"6932a380-f4240\"", "ETag: \"6932a380-f4241\""),
            ("ETag: \"6932a380-f4240\"", "ETag: W/\"6932a380-f4240\""),
            ("ETag: \"6932a380-f4240\"", "X-Tag: none"),
            ("206 Partial Content", "416 Range Not Satisfiable"),
            ("206 Partial Content", "412 Precondition Failed"),
        ]
        for (from, to) in cases {
            let text = partial.replacingOccurrences(of: from, with: to)
            guard case .differs = answer(text, to: resume) else {
                return XCTFail("\(to): \(answer(text, to: resume))")
            }
        }
        guard case .differs = answer(String(repeating: "x", count: RangeResume.maximumHeadLength), to: resume) else {
            return XCTFail("a head that never ends")
        }
    }

    func testALastModifiedPlanWantsTheSameDateAndNoNewETag() throws {
        let resume = try plan(nil, nginx(replacing: "etag", with: nil)).get()
        let partial = self.partial.replacingOccurrences(of: "ETag: \"6932a380-f4240\"\r\n", with: "")
        XCTAssertEqual(answer(partial, to: resume), .resumes(headLength: partial.utf8.count))
        guard case .differs = answer(partial.replacingOccurrences(of: "Sat, 05", with: "Sun, 06"), to: resume) else {
            return XCTFail("another Last-Modified")
        }
    }

    func testIMFFixdate() {
        XCTAssertEqual(HTTPDate.seconds(Array("Sun, 06 Nov 1994 08:49:37 GMT".utf8)), 784_111_777)
        XCTAssertEqual(HTTPDate.seconds(Array("Thu, 01 Jan 1970 00:00:00 GMT".utf8)), 0)
        XCTAssertEqual(HTTPDate.seconds(Array("Tue, 29 Feb 2028 23:59:59 GMT".utf8)), 1_835_481_599)
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 UTC", "Sun 06 Nov 1994 08:49:37 GMT,", "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        ] {
            XCTAssertNil(HTTPDate.seconds(Array(bad.utf8)), bad)
        }
    }

    // MARK: Fuzzing

    /// Random byte edits of a good plan's heads and of a good answer: nothing traps, and an
    /// answer is only ever taken for a resume when it names exactly the bytes asked for, of the
    /// same representation.
    func testMutatedHeadsNeverTrapAndNeverResumeOtherBytes() throws {
        var random = SplitMix64(seed: 0x4A4E_6E65)
        let resume = try plan().get()
        for round in 0..<10_000 {
            var bytes = Array((round % 2 == 0 ? partial : nginx).utf8)
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let at = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.remove(at: at)
                default: bytes.insert(Array(":\r\n \"-/0123456789".utf8)[Int(random.next() % 17)], at: at)
                }
            }
            if case .resumes(let length) = bytes.withUnsafeBytes({ resume.check($0) }) {
                // Read again here with plain string functions: the fields, names in any case.
                let lines = String(decoding: bytes[..<length], as: UTF8.self).components(separatedBy: "\r\n")
                let fields = lines.dropFirst().compactMap { line -> String? in
                    guard let colon = line.firstIndex(of: ":") else { return nil }
                    let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    return line[..<colon].lowercased() + ":" + value
                }
                XCTAssertTrue(["HTTP/1.1 206 ", "HTTP/1.0 206 "].contains { lines[0].hasPrefix($0) }, lines[0])
                XCTAssertTrue(fields.contains("content-range:bytes 500000-999999/1000000"), "\(lines)")
                XCTAssertTrue(fields.contains("etag:\"6932a380-f4240\""), "\(lines)")
            }
            let request = Array(get.utf8)
            _ = request.withUnsafeBytes { request in
                bytes.withUnsafeBytes { RangeResume.plan(request: request, responseHead: $0, clientHas: 600_000) }
            }
        }
    }
}
