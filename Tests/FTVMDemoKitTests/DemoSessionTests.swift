import FTVMDemoKit
import XCTest

/// Drives a `DemoSession` like the event loop does, without sockets: input offered `piece`
/// bytes at a time, output taken `chunk` bytes at a time but only `accept` of each committed
/// (a socket that takes less than offered).
struct SessionDriver {
    var session: DemoSession
    var piece = Int.max
    var chunk = 4096
    var accept = Int.max

    init(version: [UInt8]? = Array("v1\n".utf8), randomSeed: @escaping () -> UInt64 = DemoRouter.kernelRandomSeed) {
        session = DemoSession(router: DemoRouter(readVersion: { version }, randomSeed: randomSeed))
    }

    /// Returns everything the session wrote; stops when the session closes or input runs out.
    mutating func run(_ input: [UInt8]) -> [UInt8] {
        var inbox = input[...]
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            while session.hasOutput {
                let count = buffer.withUnsafeMutableBytes { session.peekOutput(into: $0) }
                let taken = min(count, accept)
                output += buffer[0..<taken]
                session.advanceOutput(by: taken)
            }
            if session.isClosing || inbox.isEmpty { return output }
            let offered = inbox.prefix(piece)
            let used = offered.withUnsafeBytes { session.receive($0) }
            XCTAssertTrue(used > 0 || session.hasOutput, "session stalled")
            inbox = inbox.dropFirst(used)
        }
    }
}

func serve(_ request: String, version: [UInt8]? = Array("v1\n".utf8)) -> String {
    var driver = SessionDriver(version: version)
    return String(decoding: driver.run(ascii(request)), as: UTF8.self)
}

func response(_ status: String, _ body: String, type: String = "text/plain", extra: String = "") -> String {
    "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
}

final class DemoSessionTests: XCTestCase {
    func testBytesGolden() {
        var driver = SessionDriver()
        let output = driver.run(ascii("GET /bytes/13?seed=42 HTTP/1.1\r\nHost: vm\r\n\r\n"))
        let head = ascii(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 13\r\n"
                + "ETag: \"b-d-2a\"\r\nAccept-Ranges: bytes\r\n\r\n")
        XCTAssertEqual(output, head + bytes("956eeb2f2632d7bd03f166b233"))
    }

    func testSeedDefaultsToZeroAndOtherParametersAreIgnored() {
        var driver = SessionDriver()
        let output = driver.run(ascii("GET /bytes/16?x=1&y HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(Array(output.suffix(16)), bytes("afcd1d7b39a820e2f465b9a16a9e786e"))
    }

    func testOutputIsIdenticalForAnyInputSplitAndSocketBehaviour() {
        let request = ascii(
            "GET /bytes/70001?seed=9 HTTP/1.1\r\n\r\nPOST /sha256 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                + "GET /health HTTP/1.1\r\n\r\n")
        var reference = SessionDriver()
        let expected = reference.run(request)
        let bytesHead =
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 70001\r\n"
            + "ETag: \"b-11171-9\"\r\nAccept-Ranges: bytes\r\n\r\n"
        let tail =
            response("200 OK", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n")
            + response("200 OK", "ok\n")
        XCTAssertEqual(expected.count, bytesHead.utf8.count + 70001 + tail.utf8.count)
        XCTAssertEqual(Array(expected.suffix(tail.utf8.count)), ascii(tail))
        for (piece, chunk, accept) in [(1, 4096, 4096), (7, 100, 33), (1000, 65536, 1), (5, 9, 8)] {
            var driver = SessionDriver()
            driver.piece = piece
            driver.chunk = chunk
            driver.accept = accept
            XCTAssertEqual(driver.run(request), expected, "piece \(piece) chunk \(chunk) accept \(accept)")
        }
    }

    func testSHA256OfBody() {
        let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
        XCTAssertEqual(serve("POST /sha256 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), response("200 OK", digest))
        XCTAssertEqual(
            serve("POST /sha256 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n"),
            response("200 OK", digest))
        XCTAssertEqual(
            serve("POST /sha256 HTTP/1.1\r\n\r\n"),
            response("200 OK", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"))
    }

    func testExpectContinueSendsInterimResponse() {
        XCTAssertEqual(
            serve("POST /sha256 HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"),
            "HTTP/1.1 100 Continue\r\n\r\n"
                + response("200 OK", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"))
    }

    func testHealthAndVersion() {
        XCTAssertEqual(serve("GET /health HTTP/1.1\r\n\r\n"), response("200 OK", "ok\n"))
        XCTAssertEqual(
            serve("GET /version HTTP/1.1\r\n\r\n", version: Array(" \t1.2.3\r\n\n".utf8)), response("200 OK", "1.2.3\n")
        )
        XCTAssertEqual(serve("GET /version HTTP/1.1\r\n\r\n", version: []), response("200 OK", "\n"))
        XCTAssertEqual(
            serve("GET /version HTTP/1.1\r\n\r\n", version: nil),
            response("500 Internal Server Error", "version file unreadable\n"))
    }

    func testNotFoundAndMethodNotAllowed() {
        XCTAssertEqual(serve("GET /nope HTTP/1.1\r\n\r\n"), response("404 Not Found", "not found\n"))
        XCTAssertEqual(serve("GET /health/ HTTP/1.1\r\n\r\n"), response("404 Not Found", "not found\n"))
        XCTAssertEqual(
            serve("GET /sha256 HTTP/1.1\r\n\r\n"),
            response("405 Method Not Allowed", "method not allowed\n", extra: "Allow: POST\r\n"))
        XCTAssertEqual(
            serve("POST /bytes/1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
            response("405 Method Not Allowed", "method not allowed\n", extra: "Allow: GET, HEAD\r\n"))
        XCTAssertEqual(
            serve("DELETE /health HTTP/1.1\r\n\r\n"),
            response("405 Method Not Allowed", "method not allowed\n", extra: "Allow: GET, HEAD, POST\r\n"))
        XCTAssertEqual(
            serve("POST /nope HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), response("404 Not Found", "not found\n"),
            "a POST to no endpoint at all is 404, not 405")
    }

    func testBadBytesArgumentsAre400AndKeepTheConnection() {
        let badN = response("400 Bad Request", "N must be a decimal unsigned 64-bit integer\n")
        for target in ["/bytes/abc", "/bytes/", "/bytes/-1", "/bytes/1.5", "/bytes/18446744073709551616", "/bytes/1/2"]
        {
            XCTAssertEqual(
                serve("GET \(target) HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"), badN + response("200 OK", "ok\n"),
                target)
        }
        XCTAssertEqual(
            serve("GET /bytes/1?seed=x HTTP/1.1\r\n\r\n"),
            response("400 Bad Request", "seed must be a decimal unsigned 64-bit integer\n"))
    }

    func testMaximumLengthIsAdvertisedNotGenerated() {
        var driver = SessionDriver()
        let input = ascii("GET /bytes/18446744073709551615 HTTP/1.1\r\n\r\n")
        XCTAssertEqual(input.withUnsafeBytes { driver.session.receive($0) }, input.count)
        var buffer = [UInt8](repeating: 0, count: 200)
        let count = buffer.withUnsafeMutableBytes { driver.session.peekOutput(into: $0) }
        XCTAssertEqual(count, 200)
        XCTAssertTrue(String(decoding: buffer, as: UTF8.self).contains("Content-Length: 18446744073709551615\r\n"))
    }

    func testKeepAliveAndConnectionClose() {
        var driver = SessionDriver()
        let output = driver.run(
            ascii(
                "GET /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n"
            ))
        XCTAssertEqual(
            String(decoding: output, as: UTF8.self),
            response("200 OK", "ok\n") + response("200 OK", "ok\n", extra: "Connection: close\r\n"))
        XCTAssertTrue(driver.session.isClosing)
        XCTAssertFalse(driver.session.acceptsInput)
    }

    func testHTTP10ClosesUnlessKeepAliveRequested() {
        XCTAssertEqual(
            serve("GET /health HTTP/1.0\r\n\r\n"), response("200 OK", "ok\n", extra: "Connection: close\r\n"))
        XCTAssertEqual(
            serve("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n"),
            response("200 OK", "ok\n", extra: "Connection: keep-alive\r\n")
                + response("200 OK", "ok\n", extra: "Connection: close\r\n"))
    }

    func testParseErrorsAnswerAndClose() {
        XCTAssertEqual(
            serve("GET /health HTTP/1.1\r\n\r\nNONSENSE\r\n\r\nGET /health HTTP/1.1\r\n\r\n"),
            response("200 OK", "ok\n")
                + response(
                    "400 Bad Request", "bad request: request line must have three parts\n",
                    extra: "Connection: close\r\n"))
        XCTAssertEqual(
            serve("GET / HTTP/1.1\r\nX: " + String(repeating: "x", count: 17_000) + "\r\n\r\n"),
            response(
                "431 Request Header Fields Too Large", "request header section too large\n",
                extra: "Connection: close\r\n"))
        XCTAssertEqual(
            serve("GET / HTTP/3.0\r\n\r\n"),
            response("505 HTTP Version Not Supported", "only HTTP/1.x is supported\n", extra: "Connection: close\r\n"))
        XCTAssertEqual(
            serve("POST /sha256 HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            response(
                "501 Not Implemented", "only Transfer-Encoding: chunked is supported\n", extra: "Connection: close\r\n")
        )
    }

    func testRandomBodiesDifferBetweenRequestsAndConnections() {
        let head = ascii("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n")
        let request = ascii("GET /random/1000 HTTP/1.1\r\n\r\n")
        // Two requests pipelined on one connection.
        var driver = SessionDriver()
        let output = driver.run(request + request)
        XCTAssertEqual(output.count, 2 * (head.count + 1000))
        let first = Array(output[0..<head.count + 1000])
        let second = Array(output[(head.count + 1000)...])
        XCTAssertEqual(Array(first.prefix(head.count)), head)
        XCTAssertEqual(Array(second.prefix(head.count)), head)
        XCTAssertTrue(
            first.dropFirst(head.count) != second.dropFirst(head.count), "pipelined requests got the same body")
        // The same request on a fresh connection, as a backup replaying it would see.
        var replay = SessionDriver()
        let again = replay.run(request)
        XCTAssertEqual(Array(again.prefix(head.count)), head)
        XCTAssertEqual(again.count, head.count + 1000)
        let replayed = again.dropFirst(head.count)
        XCTAssertTrue(
            replayed != first.dropFirst(head.count) && replayed != second.dropFirst(head.count),
            "replay repeated a body")
    }

    func testRandomDrawsOneSeedPerRequestAndStreamsIt() {
        var draws: [UInt64] = []
        var next: UInt64 = 41
        var driver = SessionDriver(randomSeed: {
            next += 1
            draws.append(next)
            return next
        })
        let output = driver.run(
            ascii(
                "GET /random/13 HTTP/1.1\r\n\r\nGET /random/x HTTP/1.1\r\n\r\nGET /random/5?seed=1 HTTP/1.1\r\n\r\n"
                    + "POST /random/5 HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(draws, [42, 43], "one draw per answered request, none for 400 or 405")
        let octets = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
        // Seed 42 is /bytes/13?seed=42's golden body; the query of /random is ignored.
        let expected =
            ascii(octets + "13\r\n\r\n") + bytes("956eeb2f2632d7bd03f166b233")
            + ascii(response("400 Bad Request", "N must be a decimal unsigned 64-bit integer\n"))
            + ascii(octets + "5\r\n\r\n") + referenceSplitMix(seed: 43, count: 5)
            + ascii(response("405 Method Not Allowed", "method not allowed\n", extra: "Allow: GET, HEAD\r\n"))
        XCTAssertEqual(output, expected)
    }

    func testRandomOutputDoesNotDependOnSocketBehaviour() {
        let request = ascii("GET /random/9001 HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
        var reference = SessionDriver(randomSeed: { 7 })
        let expected = reference.run(request)
        let health = response("200 OK", "ok\n").utf8.count
        XCTAssertEqual(Array(expected.dropLast(health).suffix(9001)), referenceSplitMix(seed: 7, count: 9001))
        for (piece, chunk, accept) in [(1, 4096, 4096), (7, 100, 33), (1000, 65536, 1), (5, 9, 8)] {
            var driver = SessionDriver(randomSeed: { 7 })
            driver.piece = piece
            driver.chunk = chunk
            driver.accept = accept
            XCTAssertEqual(driver.run(request), expected, "piece \(piece) chunk \(chunk) accept \(accept)")
        }
    }

    func testRandomStreams64MiBWithoutMaterialising() {
        let length = 64 * 1024 * 1024
        var session = DemoSession(router: DemoRouter(readVersion: { nil }))
        let input = ascii("GET /random/\(length) HTTP/1.1\r\n\r\n")
        XCTAssertEqual(input.withUnsafeBytes { session.receive($0) }, input.count)
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(length)\r\n\r\n"
        var buffer = [UInt8](repeating: 0, count: 65536)
        var total = 0
        var prefix: [UInt8] = []
        while session.hasOutput {
            let count = buffer.withUnsafeMutableBytes { session.peekOutput(into: $0) }
            if prefix.count < head.utf8.count { prefix += buffer[0..<min(count, head.utf8.count - prefix.count)] }
            total += count
            session.advanceOutput(by: count)
        }
        XCTAssertEqual(String(decoding: prefix, as: UTF8.self), head)
        XCTAssertEqual(total, head.utf8.count + length)
    }

    func testRandomMethodsAndBadLengthsMatchBytes() {
        for endpoint in ["bytes", "random"] {
            XCTAssertEqual(
                serve("POST /\(endpoint)/1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
                response("405 Method Not Allowed", "method not allowed\n", extra: "Allow: GET, HEAD\r\n"), endpoint)
            XCTAssertEqual(
                serve("PUT /\(endpoint)/1 HTTP/1.1\r\n\r\n"),
                response("405 Method Not Allowed", "method not allowed\n", extra: "Allow: GET, HEAD, POST\r\n"),
                endpoint)
            // Only /bytes/N has stable bytes to name with an ETag.
            let validators = endpoint == "bytes" ? "ETag: \"b-1-0\"\r\nAccept-Ranges: bytes\r\n" : ""
            XCTAssertEqual(
                serve("HEAD /\(endpoint)/1 HTTP/1.1\r\n\r\n"),
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\(validators)\r\n",
                endpoint)
            let badN = response("400 Bad Request", "N must be a decimal unsigned 64-bit integer\n")
            for count in ["abc", "", "-1", "1.5", "18446744073709551616", "1/2", "+1"] {
                XCTAssertEqual(
                    serve("GET /\(endpoint)/\(count) HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"),
                    badN + response("200 OK", "ok\n"), "/\(endpoint)/\(count)")
            }
        }
        XCTAssertEqual(serve("GET /random HTTP/1.1\r\n\r\n"), response("404 Not Found", "not found\n"))
        XCTAssertEqual(
            serve("GET /random/0 HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\n\r\n")
    }

    func testPendingResponseHoldsBackPipelinedInput() {
        var session = DemoSession(router: DemoRouter(readVersion: { nil }))
        let first = ascii("GET /bytes/100000 HTTP/1.1\r\n\r\n")
        let input = first + ascii("GET /health HTTP/1.1\r\n\r\n")
        XCTAssertEqual(input.withUnsafeBytes { session.receive($0) }, first.count)
        XCTAssertTrue(session.hasOutput)
        XCTAssertFalse(session.acceptsInput)
        XCTAssertEqual(input[first.count...].withUnsafeBytes { session.receive($0) }, 0)
    }
}

final class DemoServiceOptionsTests: XCTestCase {
    func testDefaults() throws {
        let options = try DemoServiceOptions.parse([])
        XCTAssertEqual(options.port, 80)
        XCTAssertEqual(options.address, [0, 0, 0, 0])
        XCTAssertEqual(options.versionFile, "/etc/ftvm/version")
        XCTAssertNil(options.commandPort)
        XCTAssertNil(options.trimSocket)
    }

    func testCommandPortAndTrimSocket() throws {
        let options = try DemoServiceOptions.parse([
            "--command-port", "7000", "--trim-socket", "/tmp/t.sock", "--port", "8080",
        ])
        XCTAssertEqual(options.commandPort, 7000)
        XCTAssertEqual(options.trimSocket, "/tmp/t.sock")
        XCTAssertEqual(options.port, 8080)
        XCTAssertEqual(
            try DemoServiceOptions.parse(["--port", "0", "--command-port", "0"]).commandPort, 0,
            "both may pick a free port")
        XCTAssertTrue(DemoServiceOptions.usage.contains("--command-port PORT"))
        XCTAssertTrue(DemoServiceOptions.usage.contains("/chunked/N"))
    }

    func testProxyOptions() throws {
        XCTAssertNil(try DemoServiceOptions.parse([]).proxyPort)
        XCTAssertEqual(try DemoServiceOptions.parse([]).proxyTarget, ProxyTarget(address: [10, 77, 0, 1], port: 9000))
        let options = try DemoServiceOptions.parse(["--proxy-port", "8090", "--proxy-to", "192.0.2.7:8000"])
        XCTAssertEqual(options.proxyPort, 8090)
        XCTAssertEqual(options.proxyTarget, ProxyTarget(address: [192, 0, 2, 7], port: 8000))
        for invalid in [
            ["--proxy-port", "0"], ["--proxy-port", "80"], ["--proxy-to", "10.0.0.1"], ["--proxy-to", "10.0.0.1:0"],
            ["--proxy-to", "host:80"], ["--command-port", "7070", "--proxy-port", "7070"],
        ] {
            XCTAssertThrowsError(try DemoServiceOptions.parse(invalid), "\(invalid)")
        }
    }

    func testAllOptions() throws {
        let options = try DemoServiceOptions.parse(["--version-file", "/v", "--port", "0", "--address", "127.0.0.1"])
        XCTAssertEqual(options.port, 0)
        XCTAssertEqual(options.address, [127, 0, 0, 1])
        XCTAssertEqual(options.versionFile, "/v")
    }

    func testInvalidArguments() {
        let invalid: [[String]] = [
            ["--port"], ["--port", "65536"], ["--port", "-1"], ["--port", "8o"], ["--port", ""],
            ["--address", "1.2.3"], ["--address", "256.0.0.1"], ["--address", "1.2.3.4.5"], ["--address", "::1"],
            ["--version-file", ""], ["--verbose"], ["80"],
            ["--command-port"], ["--command-port", "65536"], ["--command-port", "x"], ["--command-port", "80"],
            ["--port", "7000", "--command-port", "7000"], ["--trim-socket"], ["--trim-socket", ""],
        ]
        for arguments in invalid {
            XCTAssertThrowsError(try DemoServiceOptions.parse(arguments), "\(arguments)") { error in
                guard case .invalid? = error as? DemoServiceOptions.ParseError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try DemoServiceOptions.parse(["--help"])) { error in
            XCTAssertEqual(error as? DemoServiceOptions.ParseError, .helpRequested)
        }
    }
}
