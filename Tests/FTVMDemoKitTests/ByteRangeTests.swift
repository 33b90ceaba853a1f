import FTVMDemoKit
import XCTest

/// The value of the first `name` field of a response head (names compared case-insensitively).
func field(_ name: String, in head: String) -> String? {
    let prefix = name.lowercased() + ": "
    return head.split(separator: "\r\n").first { $0.lowercased().hasPrefix(prefix) }.map {
        String($0.dropFirst(prefix.count))
    }
}

final class ByteRangeTests: XCTestCase {
    func testParsesOneBytesRange() {
        let cases: [(String, ByteRange)] = [
            ("bytes=100-", .from(100, through: nil)),
            ("bytes=0-499", .from(0, through: 499)),
            ("bytes=7-7", .from(7, through: 7)),
            ("bytes=-500", .suffix(length: 500)),
            ("bytes=-0", .suffix(length: 0)),
            ("Bytes=1-2", .from(1, through: 2)),
            ("bytes= 1-2 ", .from(1, through: 2)),
            ("bytes=1-2, ,", .from(1, through: 2)),
            ("bytes=18446744073709551615-", .from(.max, through: nil)),
        ]
        for (value, expected) in cases {
            XCTAssertEqual(ByteRange(rangeField: value), expected, value)
        }
    }

    /// What the server ignores (a full 200): RFC 9110 §14.2 allows it for any Range.
    func testRejectsOtherUnitsSeveralRangesAndInvalidSyntax() {
        for value in [
            "", "bytes", "bytes=", "bytes=-", "bytes=,", "items=0-1", "bytes 0-1", "bytes=0-1,5-6", "bytes=0-1, -5",
            "bytes=a-", "bytes=1-b", "bytes=5-1", "bytes=1 - 2", "bytes=1-2-3", "bytes=+1-", "bytes=0x10-",
            "bytes=18446744073709551616-", "bytes=-18446744073709551616",
        ] {
            XCTAssertNil(ByteRange(rangeField: value), value)
        }
    }

    func testResolvesAgainstTheLength() {
        let cases: [(ByteRange, UInt64, ClosedRange<UInt64>?)] = [
            (.from(100, through: nil), 1000, 100...999),
            (.from(0, through: 0), 1000, 0...0),
            (.from(990, through: 5000), 1000, 990...999),
            (.from(999, through: nil), 1000, 999...999),
            (.from(1000, through: nil), 1000, nil),
            (.from(5000, through: 6000), 1000, nil),
            (.suffix(length: 10), 1000, 990...999),
            (.suffix(length: 5000), 1000, 0...999),
            (.suffix(length: 0), 1000, nil),
            (.from(0, through: nil), 0, nil),
            (.suffix(length: 5), 0, nil),
            (.from(.max - 1, through: nil), .max, (.max - 1)...(.max - 1)),
        ]
        for (range, length, expected) in cases {
            XCTAssertEqual(range.resolved(length: length), expected, "\(range) of \(length)")
        }
    }
}

/// `GET /bytes/N` with Range and If-Range, through a session as the event loop drives it.
final class RangeRequestTests: XCTestCase {
    /// `/bytes/1000?seed=7`'s ETag: N and the seed in hex.
    private let entityTag = "\"b-3e8-7\""

    /// The head and body of one GET of `target` with the extra `fields` (CRLF-terminated).
    private func get(_ target: String, _ fields: String = "") throws -> (head: String, body: [UInt8]) {
        let (head, rest) = try XCTUnwrap(
            splitHead(serveBytes("GET \(target) HTTP/1.1\r\n\(fields)\r\n")), target + fields)
        return (head, rest)
    }

    /// Field by field: the head of today plus the validators, last before the empty line.
    func testFullResponseGolden() throws {
        let (head, body) = try get("/bytes/1000?seed=7")
        XCTAssertEqual(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n"
                + "ETag: \"b-3e8-7\"\r\nAccept-Ranges: bytes\r\n\r\n")
        XCTAssertEqual(body, referenceSplitMix(seed: 7, count: 1000))
    }

    func testPartialResponseGolden() throws {
        let (head, body) = try get("/bytes/1000?seed=7", "Range: bytes=100-\r\n")
        XCTAssertEqual(
            head,
            "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Length: 900\r\n"
                + "Content-Range: bytes 100-999/1000\r\nETag: \"b-3e8-7\"\r\nAccept-Ranges: bytes\r\n\r\n")
        XCTAssertEqual(body, Array(referenceSplitMix(seed: 7, count: 1000)[100...]))
    }

    /// A pure function of (N, seed): equal for equal resources however the query spells them,
    /// different otherwise.
    func testEntityTagNamesTheResource() throws {
        let tag = { (target: String) in field("ETag", in: try self.get(target).head) }
        XCTAssertEqual(try tag("/bytes/1000?seed=7"), entityTag)
        XCTAssertEqual(try tag("/bytes/1000?seed=007&x=1"), entityTag)
        XCTAssertEqual(try tag("/bytes/1000?seed=1&seed=7"), entityTag, "the last seed counts, as for the body")
        XCTAssertEqual(try tag("/bytes/1000"), try tag("/bytes/1000?seed=0"))
        XCTAssertEqual(try tag("/bytes/0"), "\"b-0-0\"")
        // HEAD: a GET would stream 2^64 bytes.
        XCTAssertEqual(
            field("ETag", in: serve("HEAD /bytes/18446744073709551615?seed=18446744073709551615 HTTP/1.1\r\n\r\n")),
            "\"b-ffffffffffffffff-ffffffffffffffff\"")
        let tags = try ["/bytes/1000?seed=7", "/bytes/1000?seed=8", "/bytes/1001?seed=7", "/bytes/7?seed=1000"].map(tag)
        XCTAssertEqual(Set(tags).count, tags.count, "\(tags)")
        XCTAssertEqual(try tag("/bytes/1000?seed=7"), try tag("/bytes/1000?seed=7"), "a second server agrees")
    }

    func testPartialBodiesAreSlicesOfTheFullBody() throws {
        let full = try get("/bytes/1000?seed=7").body
        let cases: [(spec: String, first: Int, last: Int)] = [
            ("100-", 100, 999), ("0-", 0, 999), ("999-", 999, 999), ("100-199", 100, 199), ("0-0", 0, 0),
            ("3-12", 3, 12), ("990-5000", 990, 999), ("-10", 990, 999), ("-1", 999, 999), ("-1000", 0, 999),
            ("-5000", 0, 999),
        ]
        for (spec, first, last) in cases {
            let (head, body) = try get("/bytes/1000?seed=7", "Range: bytes=\(spec)\r\n")
            XCTAssertTrue(head.hasPrefix("HTTP/1.1 206 Partial Content\r\n"), spec)
            XCTAssertEqual(field("Content-Range", in: head), "bytes \(first)-\(last)/1000", spec)
            XCTAssertEqual(field("Content-Length", in: head), "\(last - first + 1)", spec)
            XCTAssertEqual(field("ETag", in: head), entityTag, spec)
            XCTAssertEqual(field("Accept-Ranges", in: head), "bytes", spec)
            XCTAssertEqual(body, Array(full[first...last]), spec)
        }
    }

    func testUnsatisfiableRangesAre416() throws {
        for (target, spec, length) in [
            ("/bytes/1000?seed=7", "1000-", 1000), ("/bytes/1000?seed=7", "5000-6000", 1000),
            ("/bytes/1000?seed=7", "-0", 1000), ("/bytes/0", "0-", 0), ("/bytes/0", "-5", 0), ("/bytes/0", "0-0", 0),
        ] {
            XCTAssertEqual(
                serve("GET \(target) HTTP/1.1\r\nRange: bytes=\(spec)\r\n\r\nGET /health HTTP/1.1\r\n\r\n"),
                response(
                    "416 Range Not Satisfiable", "range not satisfiable\n",
                    extra: "Content-Range: bytes */\(length)\r\n") + response("200 OK", "ok\n"),
                "\(target) \(spec)")
        }
    }

    /// Ignored Ranges get exactly the response of no Range at all.
    func testInvalidOrMultipleRangesAreIgnored() {
        let full = serveBytes("GET /bytes/1000?seed=7 HTTP/1.1\r\n\r\n")
        for fields in [
            "Range: bytes=0-1,5-6\r\n", "Range: bytes=0-1, -5\r\n", "Range: items=0-1\r\n", "Range: bytes=5-1\r\n",
            "Range: bytes=x-\r\n", "Range: bytes=\r\n", "Range:\r\n", "Range: bytes=0-1\r\nRange: bytes=5-6\r\n",
            "If-Range: \"b-3e8-7\"\r\n",
        ] {
            XCTAssertEqual(serveBytes("GET /bytes/1000?seed=7 HTTP/1.1\r\n\(fields)\r\n"), full, fields)
        }
    }

    /// RFC 9110 §13.1.5: the range only for exactly the current strong ETag.
    func testIfRangeHonoursOnlyTheCurrentStrongEntityTag() throws {
        let full = serveBytes("GET /bytes/1000?seed=7 HTTP/1.1\r\n\r\n")
        let partial = try get("/bytes/1000?seed=7", "Range: bytes=100-\r\nIf-Range: \"b-3e8-7\"\r\n")
        XCTAssertTrue(partial.head.hasPrefix("HTTP/1.1 206 Partial Content\r\n"))
        XCTAssertEqual(partial.body, Array(full.suffix(900)))
        XCTAssertEqual(
            try get("/bytes/1000?seed=7", "if-range: \"b-3e8-7\"\r\nrange: bytes=-10\r\n").body,
            Array(full.suffix(10)), "field names are case-insensitive")
        for condition in [
            "\"b-3e8-8\"", "W/\"b-3e8-7\"", "\"B-3E8-7\"", "b-3e8-7", "\"b-3e8-7\", \"b-3e8-8\"", "*",
            "Tue, 14 Nov 2023 22:13:20 GMT",
        ] {
            XCTAssertEqual(
                serveBytes("GET /bytes/1000?seed=7 HTTP/1.1\r\nRange: bytes=100-\r\nIf-Range: \(condition)\r\n\r\n"),
                full, condition)
        }
        XCTAssertEqual(
            serveBytes(
                "GET /bytes/1000?seed=7 HTTP/1.1\r\nRange: bytes=100-\r\nIf-Range: \"b-3e8-7\"\r\n"
                    + "If-Range: \"b-3e8-7\"\r\n\r\n"), full, "two If-Range fields are not one match")
        XCTAssertTrue(
            try get("/bytes/1000?seed=7", "Range: bytes=5000-\r\nIf-Range: \"b-3e8-8\"\r\n").head.hasPrefix(
                "HTTP/1.1 200 OK\r\n"), "a failed If-Range wins over an unsatisfiable range")
    }

    /// §14.2: range handling is defined for GET only, so HEAD keeps its 200 head.
    func testHeadIgnoresRange() {
        let head = serve("HEAD /bytes/1000?seed=7 HTTP/1.1\r\n\r\n")
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertEqual(field("ETag", in: head), entityTag)
        for fields in [
            "Range: bytes=100-\r\n", "Range: bytes=100-\r\nIf-Range: \"b-3e8-7\"\r\n", "Range: bytes=5000-\r\n",
        ] {
            XCTAssertEqual(serve("HEAD /bytes/1000?seed=7 HTTP/1.1\r\n\(fields)\r\n"), head, fields)
        }
    }

    func testChunkedAndRandomHaveNoValidatorAndIgnoreRange() throws {
        for target in ["/chunked/1000?seed=7", "/chunked/1000?seed=7&trailer=1", "/random/1000"] {
            for version in ["HTTP/1.1", "HTTP/1.0"] {
                for method in ["GET", "HEAD"] {
                    let request =
                        "\(method) \(target) \(version)\r\nRange: bytes=100-\r\nIf-Range: \(entityTag)\r\n\r\n"
                    let head = try XCTUnwrap(splitHead(serveBytes(request)), request).head
                    XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK\r\n"), request)
                    XCTAssertNil(field("ETag", in: head), request)
                    XCTAssertNil(field("Accept-Ranges", in: head), request)
                    XCTAssertNil(field("Content-Range", in: head), request)
                }
            }
        }
    }

    /// A 206 and a 416 keep the connection in step, however the bytes are cut and sent.
    func testPartialResponsesPipelineForAnyInputSplitAndSocketBehaviour() {
        let request = ascii(
            "GET /bytes/70001?seed=9 HTTP/1.1\r\nRange: bytes=12345-\r\n\r\n"
                + "GET /bytes/10?seed=9 HTTP/1.1\r\nRange: bytes=10-\r\n\r\n"
                + "GET /bytes/10?seed=9 HTTP/1.1\r\nRange: bytes=-3\r\nConnection: close\r\n\r\n")
        let partialHead =
            "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Length: 57656\r\n"
            + "Content-Range: bytes 12345-70000/70001\r\nETag: \"b-11171-9\"\r\nAccept-Ranges: bytes\r\n\r\n"
        let expected =
            ascii(partialHead) + Array(referenceSplitMix(seed: 9, count: 70001)[12345...])
            + ascii(
                response(
                    "416 Range Not Satisfiable", "range not satisfiable\n", extra: "Content-Range: bytes */10\r\n"))
            + ascii(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n"
                    + "Content-Range: bytes 7-9/10\r\nETag: \"b-a-9\"\r\nAccept-Ranges: bytes\r\n"
                    + "Connection: close\r\n\r\n") + Array(referenceSplitMix(seed: 9, count: 10).suffix(3))
        for (piece, chunk, accept) in [(Int.max, 4096, Int.max), (1, 4096, 4096), (7, 100, 33), (5, 9, 8)] {
            var driver = SessionDriver()
            driver.piece = piece
            driver.chunk = chunk
            driver.accept = accept
            XCTAssertEqual(driver.run(request), expected, "piece \(piece) chunk \(chunk) accept \(accept)")
        }
    }
}
