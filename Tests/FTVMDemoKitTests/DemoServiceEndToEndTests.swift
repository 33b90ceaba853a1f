import FTVMDemoKit
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Starts the real `ftvm-demo-service` binary on 127.0.0.1 (port 0, so the kernel picks a free
/// one and the service reports it in its start line) and talks to it over raw sockets.
///
/// Expected digests were computed with Python's hashlib over an independent splitmix64
/// implementation, so they check the binary, not this module against itself.
final class DemoServiceEndToEndTests: XCTestCase {
    private var service: Process?
    private var port: UInt16 = 0
    /// The line protocol's port (`--command-port 0`).
    private var commandPort: UInt16 = 0
    private var versionFile: URL?
    /// Stands in for the agent: the datagram socket the service's trim requests go to.
    private var trimReceiver: TrimReceiver?

    override func setUpWithError() throws {
        let binary = try Self.serviceBinary()
        let version = FileManager.default.temporaryDirectory.appendingPathComponent("ftvm-demo-version-\(getpid())")
        try " 2.5.0-test \n".write(to: version, atomically: true, encoding: .utf8)
        versionFile = version
        let receiver = try TrimReceiver(path: "/tmp/ftvm-trim-test-\(getpid()).sock")
        trimReceiver = receiver

        let process = Process()
        process.executableURL = binary
        process.arguments = [
            "--port", "0", "--address", "127.0.0.1", "--version-file", version.path, "--command-port", "0",
            "--trim-socket", receiver.path,
        ]
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        service = process

        let fd = stderr.fileHandleForReading.fileDescriptor
        port = try Self.port(
            in: try Self.readLine(from: fd, timeoutMilliseconds: 10_000), after: "ftvm-demo-service: listening on :")
        commandPort = try Self.port(
            in: try Self.readLine(from: fd, timeoutMilliseconds: 10_000),
            after: "ftvm-demo-service: command protocol listening on :")
    }

    override func tearDown() {
        if let service, service.isRunning {
            service.terminate()
            service.waitUntilExit()
        }
        service = nil
        trimReceiver = nil
        if let versionFile { try? FileManager.default.removeItem(at: versionFile) }
    }

    private static func port(in line: String, after prefix: String) throws -> UInt16 {
        guard line.hasPrefix(prefix), let port = UInt16(line.dropFirst(prefix.count)) else {
            throw TestError("unexpected start line \(line.debugDescription)")
        }
        return port
    }

    // MARK: - The command port and its trim requests

    func testCommandPortAnswersInOrderAndTrimsAfterEachReply() throws {
        let receiver = try XCTUnwrap(trimReceiver)
        let connection = try TestConnection(port: commandPort)
        let steps: [(command: String, reply: [UInt8])] = [
            ("PING\n", ascii("PONG\n")),
            ("ECHO three little words\r\n", ascii("three little words\n")),
            ("BYTES 300000 5\n", ascii("DATA 300000\n") + referenceSplitMix(seed: 5, count: 300_000)),
            ("VERSION\n", ascii("2.5.0-test\n")),
            ("HELLO\n", ascii("ERR unknown command\n")),
        ]
        // All pipelined in one write; answered one at a time, in order.
        try connection.send(steps.flatMap { ascii($0.command) })
        var client = 0
        var server = 0
        var expected: [String] = []
        for step in steps {
            XCTAssertEqual(try connection.readExactly(step.reply.count), step.reply, step.command)
            client += step.command.utf8.count
            server += step.reply.count
            expected.append("ftvm-trim 1 127.0.0.1 \(connection.localPort) \(commandPort) \(client) \(server)\n")
        }
        let received = try (0..<steps.count).map { _ in try receiver.receive(timeoutMilliseconds: 5000) }
        XCTAssertEqual(received, expected)
        XCTAssertNil(try receiver.receiveIfAny(timeoutMilliseconds: 200), "one trim per reply")

        // A second connection counts from its own first byte.
        let second = try TestConnection(port: commandPort)
        try second.send(ascii("PING\n"))
        XCTAssertEqual(try second.readExactly(5), ascii("PONG\n"))
        XCTAssertEqual(
            try receiver.receive(timeoutMilliseconds: 5000),
            "ftvm-trim 1 127.0.0.1 \(second.localPort) \(commandPort) 5 5\n")
    }

    func testCommandPortRefusesLongLinesAndCloses() throws {
        let receiver = try XCTUnwrap(trimReceiver)
        let connection = try TestConnection(port: commandPort)
        try connection.send(ascii("PING\n" + String(repeating: "x", count: 5000) + "\nPING\n"))
        XCTAssertEqual(try connection.readToEnd(), ascii("PONG\nERR line too long\n"))
        XCTAssertEqual(
            try receiver.receive(timeoutMilliseconds: 5000),
            "ftvm-trim 1 127.0.0.1 \(connection.localPort) \(commandPort) 5 5\n")
        XCTAssertNil(try receiver.receiveIfAny(timeoutMilliseconds: 200), "no trim for a refused line")
    }

    /// Trimming is an optimisation: with no agent listening, the service answers as before.
    func testCommandPortWorksWithoutTheAgent() throws {
        trimReceiver = nil  // closes and unlinks the socket
        let connection = try TestConnection(port: commandPort)
        for _ in 0..<50 {
            try connection.send(ascii("PING\nBYTES 3 1\n"))
            XCTAssertEqual(
                try connection.readExactly(5 + 7 + 3), ascii("PONG\nDATA 3\n") + referenceSplitMix(seed: 1, count: 3))
        }
        XCTAssertTrue(try XCTUnwrap(service).isRunning)
        // HTTP is untouched by the command port.
        let http = try TestConnection(port: port)
        try http.send(ascii("GET /health HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(try http.readResponse().text, "ok\n")
    }

    // MARK: - HTTP

    func testBytesStreamMatchesIndependentDigest() throws {
        let length = 4 * 1024 * 1024 + 5
        let connection = try TestConnection(port: port)
        try connection.send(ascii("GET /bytes/\(length)?seed=1 HTTP/1.1\r\nHost: test\r\n\r\n"))
        let response = try connection.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["content-length"], "\(length)")
        XCTAssertEqual(response.headers["content-type"], "application/octet-stream")
        XCTAssertEqual(response.body.count, length)
        XCTAssertEqual(
            SHA256.hex(SHA256.hash(response.body)), "6b26d728221e70aa0fc791596b2b3331b62725962dc5752978291845f988fbd4")
        XCTAssertEqual(Array(response.body.prefix(1000)), referenceSplitMix(seed: 1, count: 1000))
    }

    /// A download cut short resumes where it stopped, as curl -C - (or a replay) would ask.
    func testBytesResumeWithRangeAndIfRange() throws {
        let length = 4 * 1024 * 1024 + 5
        let resumeAt = 1_234_567
        let connection = try TestConnection(port: port)
        try connection.send(ascii("HEAD /bytes/\(length)?seed=1 HTTP/1.1\r\n\r\n"))
        let entityTag = try XCTUnwrap(try connection.readResponse(toHead: true).headers["etag"])
        XCTAssertEqual(entityTag, "\"b-400005-1\"")
        try connection.send(
            ascii("GET /bytes/\(length)?seed=1 HTTP/1.1\r\nRange: bytes=\(resumeAt)-\r\nIf-Range: \(entityTag)\r\n\r\n")
        )
        let rest = try connection.readResponse()
        XCTAssertEqual(rest.status, 206)
        XCTAssertEqual(rest.headers["content-range"], "bytes \(resumeAt)-\(length - 1)/\(length)")
        XCTAssertEqual(rest.headers["accept-ranges"], "bytes")
        XCTAssertEqual(rest.body.count, length - resumeAt)
        let whole = referenceSplitMix(seed: 1, count: resumeAt) + rest.body
        // The same digest as the whole download in testBytesStreamMatchesIndependentDigest.
        XCTAssertEqual(
            SHA256.hex(SHA256.hash(whole)), "6b26d728221e70aa0fc791596b2b3331b62725962dc5752978291845f988fbd4")
    }

    func testRandomDiffersOnEveryRequest() throws {
        let length = 1024 * 1024 + 3
        let request = ascii("GET /random/\(length) HTTP/1.1\r\nHost: test\r\n\r\n")
        var bodies: [[UInt8]] = []
        let keptAlive = try TestConnection(port: port)
        for connection in [keptAlive, keptAlive, try TestConnection(port: port)] {
            try connection.send(request)
            let response = try connection.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers["content-length"], "\(length)")
            XCTAssertEqual(response.headers["content-type"], "application/octet-stream")
            XCTAssertEqual(response.body.count, length)
            bodies.append(response.body)
        }
        // Compared with == rather than XCTAssertNotEqual, whose failure message would print MiBs.
        XCTAssertTrue(bodies[0] != bodies[1], "two requests on one connection got the same body")
        XCTAssertTrue(bodies[0] != bodies[2] && bodies[1] != bodies[2], "a new connection repeated a body")
    }

    func testSHA256OfUpload() throws {
        let body = referenceSplitMix(seed: 99, count: 300_000)
        let expected = "85e4c171c1e3ccf012951f17f1b7cae3f2de62dba22fd5fa92416a8454ba5ca6\n"
        let connection = try TestConnection(port: port)

        try connection.send(ascii("POST /sha256 HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n") + body)
        let plain = try connection.readResponse()
        XCTAssertEqual(plain.status, 200)
        XCTAssertEqual(plain.text, expected)

        var chunked = ascii("POST /sha256 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in stride(from: 0, to: body.count, by: 70_000) {
            let piece = body[start..<min(start + 70_000, body.count)]
            chunked += ascii(String(piece.count, radix: 16) + "\r\n") + piece + ascii("\r\n")
        }
        try connection.send(chunked + ascii("0\r\n\r\n"))
        XCTAssertEqual(try connection.readResponse().text, expected)
    }

    func testChunkedStreamMatchesIndependentDigest() throws {
        let length = 4 * 1024 * 1024 + 5
        let connection = try TestConnection(port: port)
        try connection.send(ascii("GET /chunked/\(length)?seed=1&chunk=10000&trailer=1 HTTP/1.1\r\nHost: test\r\n\r\n"))
        let response = try connection.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["transfer-encoding"], "chunked")
        XCTAssertEqual(response.headers["trailer"], "X-Length")
        XCTAssertNil(response.headers["content-length"])
        XCTAssertEqual(response.trailers, ["x-length": "\(length)"])
        XCTAssertEqual(response.chunkSizes.count, length / 10000 + 2)
        XCTAssertEqual(response.chunkSizes.first, "2710")
        XCTAssertEqual(response.body.count, length)
        // The same digest as /bytes/N?seed=1: the same payload, another framing.
        XCTAssertEqual(
            SHA256.hex(SHA256.hash(response.body)), "6b26d728221e70aa0fc791596b2b3331b62725962dc5752978291845f988fbd4")

        // Default chunk size, no trailer; and the connection is still in step afterwards.
        try connection.send(ascii("GET /chunked/10000?seed=2 HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n"))
        let plain = try connection.readResponse()
        XCTAssertEqual(plain.chunkSizes, ["1000", "1000", "710", "0"])
        XCTAssertEqual(plain.trailers, [:])
        XCTAssertEqual(plain.body, referenceSplitMix(seed: 2, count: 10000))
        XCTAssertEqual(try connection.readResponse().text, "ok\n")
    }

    func testHeadAndNoContent() throws {
        let connection = try TestConnection(port: port)
        try connection.send(
            ascii(
                "HEAD /bytes/1000000 HTTP/1.1\r\n\r\nHEAD /chunked/10?trailer=1 HTTP/1.1\r\n\r\nHEAD /random/5 HTTP/1.1\r\n\r\n"
                    + "HEAD /version HTTP/1.1\r\n\r\nGET /nocontent HTTP/1.1\r\n\r\nHEAD /nocontent HTTP/1.1\r\n\r\n"
                    + "GET /health HTTP/1.1\r\n\r\n"))
        let bytes = try connection.readResponse(toHead: true)
        XCTAssertEqual(bytes.headers["content-length"], "1000000")
        let chunked = try connection.readResponse(toHead: true)
        XCTAssertEqual(chunked.headers["transfer-encoding"], "chunked")
        XCTAssertEqual(try connection.readResponse(toHead: true).headers["content-length"], "5")
        XCTAssertEqual(try connection.readResponse(toHead: true).headers["content-length"], "11")
        for _ in 0..<2 {
            let noContent = try connection.readResponse()
            XCTAssertEqual(noContent.status, 204)
            XCTAssertEqual(noContent.headers, [:])
        }
        // Had any HEAD leaked a body, this would not parse as the health answer.
        XCTAssertEqual(try connection.readResponse().text, "ok\n")
    }

    func testKeepAliveSequentialAndPipelined() throws {
        let connection = try TestConnection(port: port)
        try connection.send(ascii("GET /health HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(try connection.readResponse().text, "ok\n")
        try connection.send(ascii("GET /version HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(try connection.readResponse().text, "2.5.0-test\n")
        try connection.send(ascii("GET /bytes/13?seed=42 HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(try connection.readResponse().body, bytes("956eeb2f2632d7bd03f166b233"))

        // Three requests in one write; the last asks to close.
        try connection.send(
            ascii(
                "GET /nope HTTP/1.1\r\n\r\nGET /bytes/100000?seed=3 HTTP/1.1\r\n\r\n"
                    + "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"))
        let notFound = try connection.readResponse()
        XCTAssertEqual(notFound.status, 404)
        XCTAssertEqual(try connection.readResponse().body, referenceSplitMix(seed: 3, count: 100_000))
        let last = try connection.readResponse()
        XCTAssertEqual(last.headers["connection"], "close")
        XCTAssertEqual(try connection.readToEnd(), [], "server closes after Connection: close")
    }

    func testMalformedRequestGets400AndClose() throws {
        let connection = try TestConnection(port: port)
        try connection.send(ascii("HELLO\r\n\r\n"))
        let response = try connection.readResponse()
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(response.headers["connection"], "close")
        XCTAssertEqual(try connection.readToEnd(), [])
    }

    func testSurvivesVanishingClientsAndServesManyConnections() throws {
        // Clients that disappear mid-stream must cost the server nothing but an EPIPE.
        for _ in 0..<5 {
            let quitter = try TestConnection(port: port)
            try quitter.send(ascii("GET /bytes/1000000000 HTTP/1.1\r\n\r\n"))
            _ = try quitter.readSome()
        }
        let connections = try (0..<300).map { _ in try TestConnection(port: port) }
        for (index, connection) in connections.enumerated() {
            try connection.send(ascii("GET /bytes/\(index)?seed=\(index) HTTP/1.1\r\n\r\n"))
        }
        for (index, connection) in connections.enumerated() {
            XCTAssertEqual(try connection.readResponse().body, referenceSplitMix(seed: UInt64(index), count: index))
        }
        XCTAssertTrue(try XCTUnwrap(service).isRunning)
    }

    func testBadArgumentsExitWithUsage() throws {
        let process = Process()
        process.executableURL = try Self.serviceBinary()
        process.arguments = ["--port", "http"]
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 2)
        XCTAssertTrue(message.contains("usage: ftvm-demo-service"), message)
    }

    // MARK: - Helpers

    /// The service binary is built into the same products directory as the test bundle.
    /// An idle demo service with its proxy listening uses next to no CPU. Its proxy thread once
    /// called accept in a loop on the non-blocking listener and spun on EAGAIN: every demo
    /// guest burnt its whole vCPU, idle or not (2026-12-01 to 2026-12-07).
    func testAnIdleProxyTakesNoCPU() throws {
        let process = Process()
        process.executableURL = try Self.serviceBinary()
        process.arguments = [
            "--port", "0", "--address", "127.0.0.1", "--command-port", "0", "--proxy-port", "\(try Self.freePort())",
            "--proxy-to", "127.0.0.1:9",
        ]
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        var lines: [String] = []
        while !(lines.last ?? "").contains("proxy listening on :") {
            lines.append(
                try Self.readLine(from: stderr.fileHandleForReading.fileDescriptor, timeoutMilliseconds: 10_000))
        }
        let before = try Self.cpuTicks(of: process.processIdentifier)
        sleep(1)
        let used = try Self.cpuTicks(of: process.processIdentifier) - before
        // Spinning, it took 70-100 of the 100 ticks a second holds (less on a busy host, but
        // never near 0); idle, 0 or 1.
        XCTAssertLessThan(used, 10, "the idle service used \(used) clock ticks of CPU in a second: \(lines)")
    }

    /// A TCP port nothing listens on now (the kernel's pick; the proxy takes no port 0).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TestError("cannot pick a free port") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// User and system clock ticks of every thread of `pid` (/proc/PID/stat fields 14 and 15).
    static func cpuTicks(of pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        guard let close = stat.lastIndex(of: ")") else { throw TestError("unreadable stat \(stat)") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else {
            throw TestError("unreadable stat \(stat)")
        }
        return user + system
    }

    static func serviceBinary() throws -> URL {
        var candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        candidates += Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        for directory in candidates {
            let binary = directory.appendingPathComponent("ftvm-demo-service")
            if FileManager.default.isExecutableFile(atPath: binary.path) { return binary }
        }
        throw TestError("ftvm-demo-service not found next to the test bundle (looked in \(candidates.map(\.path)))")
    }

    static func readLine(from fd: Int32, timeoutMilliseconds: Int32) throws -> String {
        var line: [UInt8] = []
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, timeoutMilliseconds) == 1 else { throw TestError("service printed no start line") }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { throw TestError("service exited before listening") }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
    }
}

/// Deliberately naive splitmix64 (one word at a time, no random access), independent of the
/// module's offset-addressable implementation.
func referenceSplitMix(seed: UInt64, count: Int) -> [UInt8] {
    var state = seed
    var out: [UInt8] = []
    out.reserveCapacity(count + 8)
    while out.count < count {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z = z ^ (z >> 31)
        for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: z >> UInt64(shift))) }
    }
    return Array(out.prefix(count))
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct TestResponse {
    var status: Int
    /// Lowercased names.
    var headers: [String: String]
    var body: [UInt8]
    /// For a chunked body: the size lines as sent, and the trailer fields (lowercased names).
    var chunkSizes: [String] = []
    var trailers: [String: String] = [:]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A Unix datagram socket bound at `path`, standing in for the agent's trim socket. Closes and
/// unlinks it on release.
final class TrimReceiver {
    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw TestError("bind \(path): \(errno)")
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram as text, or nil when none arrives in time.
    func receiveIfAny(timeoutMilliseconds: Int32) throws -> String? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, timeoutMilliseconds) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard count >= 0 else { throw TestError("recv: \(errno)") }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    func receive(timeoutMilliseconds: Int32) throws -> String {
        guard let datagram = try receiveIfAny(timeoutMilliseconds: timeoutMilliseconds) else {
            throw TestError("no trim request within \(timeoutMilliseconds) ms")
        }
        return datagram
    }
}

/// A blocking client socket with 20 s timeouts, so a broken server fails the test instead of
/// hanging it.
final class TestConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket: \(errno)") }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw TestError("connect: \(errno)")
        }
    }

    deinit {
        close(fd)
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw TestError("send: \(errno)") }
            offset += sent
        }
    }

    /// Appends one read to the buffer; `false` at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard count >= 0 else { throw TestError("recv: \(errno)") }
        buffer += chunk[0..<count]
        return count > 0
    }

    /// The connection's local (client) port, as the service sees it as the peer's.
    var localPort: UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw TestError("connection closed after \(buffer.count) of \(count) bytes") }
        }
        defer { buffer.removeFirst(count) }
        return Array(buffer[0..<count])
    }

    /// One CRLF-terminated line, without the CRLF.
    private func readCRLFLine() throws -> String {
        while true {
            if let end = buffer.indices.dropLast().first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 }) {
                defer { buffer.removeFirst(end + 2) }
                return String(decoding: buffer[0..<end], as: UTF8.self)
            }
            guard try fill() else { throw TestError("connection closed inside a line") }
        }
    }

    func readSome() throws -> [UInt8] {
        if buffer.isEmpty { _ = try fill() }
        defer { buffer = [] }
        return buffer
    }

    func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { buffer = [] }
        return buffer
    }

    /// Reads one response: a Content-Length or chunked body, or none for a 204 or when the
    /// request was HEAD (`toHead`).
    func readResponse(toHead: Bool = false) throws -> TestResponse {
        let terminator = ascii("\r\n\r\n")
        var headEnd: Int?
        while true {
            if let end = buffer.indices.dropLast(3).first(where: { buffer[$0..<$0 + 4].elementsEqual(terminator) }) {
                headEnd = end
                break
            }
            guard try fill() else { throw TestError("connection closed before a response head") }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else {
            throw TestError("bad status line in \(head.debugDescription)")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw TestError("bad header \(line)") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        if toHead || status == 204 {
            return TestResponse(status: status, headers: headers, body: [])
        }
        if headers["transfer-encoding"] == "chunked" {
            // RFC 9112 §7.1, the plain way: size line, data, CRLF; a 0 size; trailers; CRLF.
            var response = TestResponse(status: status, headers: headers, body: [])
            while true {
                let sizeLine = try readCRLFLine()
                response.chunkSizes.append(sizeLine)
                guard let size = Int(sizeLine, radix: 16) else { throw TestError("bad chunk size \(sizeLine)") }
                if size == 0 { break }
                response.body += try readExactly(size)
                guard try readExactly(2) == [13, 10] else { throw TestError("chunk data not followed by CRLF") }
            }
            while case let line = try readCRLFLine(), !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { throw TestError("bad trailer \(line)") }
                response.trailers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                    in: .whitespaces)
            }
            return response
        }
        guard let length = headers["content-length"].flatMap(Int.init) else {
            throw TestError("no Content-Length in \(head)")
        }
        while buffer.count < length {
            guard try fill() else { throw TestError("connection closed inside a body") }
        }
        let body = Array(buffer[0..<length])
        buffer.removeFirst(length)
        return TestResponse(status: status, headers: headers, body: body)
    }
}
