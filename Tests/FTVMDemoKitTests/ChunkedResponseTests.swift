import FTVMDemoKit
import XCTest

/// Decodes a chunked body (RFC 9112 §7.1) the simple way, independent of the module: returns
/// the payload, the chunk sizes as sent (hex text), the trailer lines, and the bytes after the
/// body; nil when the framing is wrong.
func decodeChunked(_ bytes: [UInt8]) -> (payload: [UInt8], sizes: [String], trailers: [String], rest: [UInt8])? {
    var index = 0
    func line() -> String? {
        var text: [UInt8] = []
        while index + 1 < bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 {
                index += 2
                return String(decoding: text, as: UTF8.self)
            }
            text.append(bytes[index])
            index += 1
        }
        return nil
    }
    var payload: [UInt8] = []
    var sizes: [String] = []
    while true {
        guard let sizeLine = line(), let size = Int(sizeLine, radix: 16) else { return nil }
        sizes.append(sizeLine)
        if size == 0 { break }
        guard index + size + 2 <= bytes.count, bytes[index + size] == 13, bytes[index + size + 1] == 10 else {
            return nil
        }
        payload += bytes[index..<index + size]
        index += size + 2
    }
    var trailers: [String] = []
    while let trailer = line() {
        if trailer.isEmpty { return (payload, sizes, trailers, Array(bytes[index...])) }
        trailers.append(trailer)
    }
    return nil
}

/// The session's whole output for `request`, as bytes (`serve` decodes it as text, lossily).
func serveBytes(_ request: String) -> [UInt8] {
    var driver = SessionDriver()
    return driver.run(ascii(request))
}

/// Splits a response into head text (through the empty line) and what follows.
func splitHead(_ bytes: [UInt8]) -> (head: String, rest: [UInt8])? {
    guard let end = bytes.indices.dropLast(3).first(where: { bytes[$0..<$0 + 4].elementsEqual([13, 10, 13, 10]) })
    else { return nil }
    return (String(decoding: bytes[..<(end + 4)], as: UTF8.self), Array(bytes[(end + 4)...]))
}

final class ChunkedResponseTests: XCTestCase {
    private let chunkedHead =
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"

    /// Field by field: sizes in lower-case hex, each chunk's CRLF, the last chunk, the trailer.
    func testGolden() {
        let output = serveBytes("GET /chunked/13?seed=42&chunk=5&trailer=1 HTTP/1.1\r\n\r\n")
        let body = bytes("956eeb2f2632d7bd03f166b233")  // /bytes/13?seed=42
        let expected =
            ascii(chunkedHead + "Trailer: X-Length\r\n\r\n")
            + ascii("5\r\n") + body[0..<5] + ascii("\r\n")
            + ascii("5\r\n") + body[5..<10] + ascii("\r\n")
            + ascii("3\r\n") + body[10..<13] + ascii("\r\n")
            + ascii("0\r\nX-Length: 13\r\n\r\n")
        XCTAssertEqual(output, expected)
    }

    func testDecodesToTheBytesEndpointsPayload() throws {
        let cases: [(length: Int, query: String, sizes: [String]?)] = [
            (0, "", ["0"]),
            (1, "seed=3", ["1", "0"]),
            (4096, "seed=5", ["1000", "0"]),
            (4097, "seed=5", ["1000", "1", "0"]),
            (10_000, "chunk=255", nil),
            (70_001, "seed=9&chunk=65536", ["10000", "1171", "0"]),
            (100, "chunk=1", nil),
            (100, "chunk=18446744073709551615", ["64", "0"]),
        ]
        for (length, query, sizes) in cases {
            for trailer in [false, true] {
                let target = "/chunked/\(length)?\(query)" + (trailer ? "&trailer=1" : "")
                let (head, rest) = try XCTUnwrap(splitHead(serveBytes("GET \(target) HTTP/1.1\r\n\r\n")), target)
                XCTAssertEqual(head, chunkedHead + (trailer ? "Trailer: X-Length\r\n" : "") + "\r\n", target)
                let decoded = try XCTUnwrap(decodeChunked(rest), target)
                let seed = UInt64(query.split(separator: "&").first { $0.hasPrefix("seed=") }?.dropFirst(5) ?? "0")!
                XCTAssertEqual(decoded.payload, referenceSplitMix(seed: seed, count: length), target)
                XCTAssertEqual(decoded.trailers, trailer ? ["X-Length: \(length)"] : [], target)
                XCTAssertEqual(decoded.rest, [], target)
                if let sizes { XCTAssertEqual(decoded.sizes, sizes, target) }
                XCTAssertTrue(decoded.sizes.allSatisfy { $0 == $0.lowercased() }, target)
            }
        }
        // chunk=255: 39 chunks of ff and one of 0x37 (10000 = 39 * 255 + 55).
        let decoded = try XCTUnwrap(
            decodeChunked(splitHead(serveBytes("GET /chunked/10000?chunk=255 HTTP/1.1\r\n\r\n"))!.rest))
        XCTAssertEqual(decoded.sizes, Array(repeating: "ff", count: 39) + ["37", "0"])
    }

    func testOutputIsIdenticalForAnyInputSplitAndSocketBehaviour() {
        let request = ascii(
            "GET /chunked/20001?seed=4&chunk=1000&trailer=1 HTTP/1.1\r\n\r\nGET /chunked/7?chunk=3 HTTP/1.1\r\n\r\n"
                + "GET /health HTTP/1.1\r\n\r\n")
        var reference = SessionDriver()
        let expected = reference.run(request)
        for (piece, chunk, accept) in [(1, 4096, 4096), (7, 100, 33), (1000, 65536, 1), (5, 9, 8), (3, 1, 1)] {
            var driver = SessionDriver()
            driver.piece = piece
            driver.chunk = chunk
            driver.accept = accept
            XCTAssertEqual(driver.run(request), expected, "piece \(piece) chunk \(chunk) accept \(accept)")
        }
        // Three responses back to back, each decodable.
        var rest = expected[...]
        for (length, seed) in [(20001, UInt64(4)), (7, 0)] {
            let (_, body) = splitHead(Array(rest))!
            let decoded = decodeChunked(body)!
            XCTAssertEqual(decoded.payload, referenceSplitMix(seed: seed, count: length))
            rest = decoded.rest[...]
        }
        XCTAssertEqual(String(decoding: rest, as: UTF8.self), response("200 OK", "ok\n"))
    }

    func testHTTP10GetsAContentLengthInstead() {
        var driver = SessionDriver()
        let output = driver.run(ascii("GET /chunked/13?seed=42&chunk=5&trailer=1 HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(
            output,
            ascii(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
            )
                + bytes("956eeb2f2632d7bd03f166b233"))
    }

    func testBadParametersAre400AndKeepTheConnection() {
        let cases = [
            ("/chunked/x", "N must be a decimal unsigned 64-bit integer\n"),
            ("/chunked/", "N must be a decimal unsigned 64-bit integer\n"),
            ("/chunked/1?seed=-1", "seed must be a decimal unsigned 64-bit integer\n"),
            ("/chunked/1?chunk=0", "chunk must be a decimal unsigned 64-bit integer above 0\n"),
            ("/chunked/1?chunk=", "chunk must be a decimal unsigned 64-bit integer above 0\n"),
            ("/chunked/1?chunk=0x10", "chunk must be a decimal unsigned 64-bit integer above 0\n"),
            ("/chunked/1?chunk=18446744073709551616", "chunk must be a decimal unsigned 64-bit integer above 0\n"),
            ("/chunked/1?trailer=yes", "trailer must be 0 or 1\n"),
            ("/chunked/1?trailer=", "trailer must be 0 or 1\n"),
        ]
        for (target, message) in cases {
            XCTAssertEqual(
                serve("GET \(target) HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"),
                response("400 Bad Request", message) + response("200 OK", "ok\n"), target)
        }
        XCTAssertEqual(
            serveBytes("GET /chunked/3?trailer=0 HTTP/1.1\r\n\r\n"),
            ascii(chunkedHead + "\r\n3\r\n") + referenceSplitMix(seed: 0, count: 3) + ascii("\r\n0\r\n\r\n"))
    }

    func testMaximumLengthIsAdvertisedNotGenerated() {
        var session = DemoSession(router: DemoRouter(readVersion: { nil }))
        let input = ascii("GET /chunked/18446744073709551615?chunk=18446744073709551615&trailer=1 HTTP/1.1\r\n\r\n")
        XCTAssertEqual(input.withUnsafeBytes { session.receive($0) }, input.count)
        var buffer = [UInt8](repeating: 0, count: 200)
        let count = buffer.withUnsafeMutableBytes { session.peekOutput(into: $0) }
        XCTAssertEqual(count, 200)
        XCTAssertTrue(String(decoding: buffer, as: UTF8.self).contains("\r\n\r\nffffffffffffffff\r\n"))
    }
}

final class ChunkedSplitMix64StreamTests: XCTestCase {
    private func readAll(_ stream: ChunkedSplitMix64Stream, step: Int) -> [UInt8] {
        var stream = stream
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: step)
        while !stream.isFinished {
            let count = buffer.withUnsafeMutableBytes { stream.peek(into: $0) }
            XCTAssertGreaterThan(count, 0)
            out += buffer[0..<count]
            XCTAssertEqual(stream.advance(by: count), count)
        }
        return out
    }

    func testPeekStepDoesNotChangeTheBytes() {
        for trailer in [false, true] {
            let stream = ChunkedSplitMix64Stream(seed: 77, length: 1000, chunkSize: 64, trailer: trailer)
            let reference = readAll(stream, step: 1 << 16)
            XCTAssertEqual(decodeChunked(reference)?.payload, referenceSplitMix(seed: 77, count: 1000))
            for step in [1, 2, 3, 5, 7, 64, 67, 69, 999] {
                XCTAssertEqual(readAll(stream, step: step), reference, "step \(step)")
            }
        }
    }

    func testPeekDoesNotMoveAndAdvanceClamps() {
        var stream = ChunkedSplitMix64Stream(seed: 1, length: 2, chunkSize: 1, trailer: true)
        // "1\r\nX\r\n1\r\nY\r\n0\r\nX-Length: 2\r\n\r\n": 6 + 6 + 3 + 13 + 2 = 30 bytes.
        var buffer = [UInt8](repeating: 0, count: 64)
        let first = buffer.withUnsafeMutableBytes { stream.peek(into: $0) }
        let again = buffer.withUnsafeMutableBytes { stream.peek(into: $0) }
        XCTAssertEqual(first, 30)
        XCTAssertEqual(again, 30)
        XCTAssertEqual(stream.advance(by: 1000), 30)
        XCTAssertTrue(stream.isFinished)
        XCTAssertEqual(stream.advance(by: 1), 0)
        XCTAssertEqual(buffer.withUnsafeMutableBytes { stream.peek(into: $0) }, 0)
    }

    func testChunkSizeZeroIsClampedToOne() {
        XCTAssertEqual(ChunkedSplitMix64Stream(seed: 0, length: 3, chunkSize: 0, trailer: false).chunkSize, 1)
    }
}

final class HeadAndNoContentTests: XCTestCase {
    /// HEAD gets exactly GET's head and nothing else, on every GET endpoint.
    func testHeadIsGetsHeadWithoutBody() throws {
        for target in [
            "/bytes/100?seed=1", "/chunked/100?chunk=7&trailer=1", "/version", "/health", "/nocontent", "/nope",
            "/bytes/x",
            "/chunked/1?chunk=0",
        ] {
            let get = try XCTUnwrap(splitHead(serveBytes("GET \(target) HTTP/1.1\r\n\r\n")), target)
            XCTAssertEqual(serve("HEAD \(target) HTTP/1.1\r\n\r\n"), get.head, target)
            XCTAssertEqual(
                serve("HEAD \(target) HTTP/1.0\r\n\r\n"),
                try XCTUnwrap(splitHead(serveBytes("GET \(target) HTTP/1.0\r\n\r\n"))).head, target)
        }
        // Not a GET endpoint: 405, still without a body.
        XCTAssertEqual(
            serve("HEAD /sha256 HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nAllow: POST\r\n\r\n")
    }

    func testHeadOfRandomDrawsNoSeed() {
        var draws = 0
        var driver = SessionDriver(randomSeed: {
            draws += 1
            return 42
        })
        let output = driver.run(ascii("HEAD /random/13 HTTP/1.1\r\n\r\nGET /random/13 HTTP/1.1\r\n\r\n"))
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 13\r\n\r\n"
        XCTAssertEqual(output, ascii(head + head) + bytes("956eeb2f2632d7bd03f166b233"))
        XCTAssertEqual(draws, 1, "only the GET drew a seed")
    }

    /// Pipelined HEADs leave nothing behind that the next response could be mistaken for.
    func testPipelinedHeadsAndGets() {
        XCTAssertEqual(
            serve(
                "HEAD /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\nHEAD /health HTTP/1.1\r\nConnection: close\r\n\r\n"
            ),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n" + response("200 OK", "ok\n")
                + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n")
    }

    /// A HEAD with a body: the body is read and dropped like any other request's.
    func testHeadWithBodyIsFramedByItsContentLength() {
        XCTAssertEqual(
            serve("HEAD /health HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /health HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n" + response("200 OK", "ok\n"))
    }

    func testNoContent() {
        XCTAssertEqual(serve("GET /nocontent HTTP/1.1\r\n\r\n"), "HTTP/1.1 204 No Content\r\n\r\n")
        XCTAssertEqual(
            serve("GET /nocontent?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(serve("GET /nocontent HTTP/1.0\r\n\r\n"), "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(
            serve("GET /nocontent HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 204 No Content\r\n\r\n" + response("200 OK", "ok\n"))
        XCTAssertEqual(
            serve("POST /nocontent HTTP/1.1\r\n\r\n"),
            response("405 Method Not Allowed", "method not allowed\n", extra: "Allow: GET, HEAD\r\n"))
        XCTAssertEqual(serve("GET /nocontent/ HTTP/1.1\r\n\r\n"), response("404 Not Found", "not found\n"))
    }
}
