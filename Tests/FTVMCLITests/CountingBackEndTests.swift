import FTVMSystem
import Foundation
import Glibc
import SeededRandom
import XCTest

@testable import FTVMCLI

/// `ftvm chaos --backend`: the counting back end's answers and counts, as a proxy meets them
/// over real TCP, and how a round's proxied requests are judged from the counts.
final class CountingBackEndTests: XCTestCase {
    func testItAnswersEachSeedsBytesAndCountsEveryRequest() throws {
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        let backEnd = try CountingBackEnd(try XCTUnwrap(IPv4Endpoint("127.0.0.1:0")), namespace: nil)
        backEnd.start()
        defer { backEnd.stop() }
        let port = backEnd.endpoint.port
        // Two requests on one kept-alive connection (as a pooled upstream sends them), then one
        // that closes it (as nginx's default proxy_pass does).
        let connection = try connect(port: port)
        defer { close(connection) }
        let requests =
            "GET /bytes/100000?seed=7 HTTP/1.1\r\nHost: b\r\n\r\n"
            + "GET /bytes/10?seed=8 HTTP/1.1\r\nHost: b\r\nConnection: keep-alive\r\n\r\n"
            + "GET /bytes/10?seed=7 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        XCTAssertEqual(send(connection, requests, requests.utf8.count, 0), requests.utf8.count)
        let answers = readAll(connection)
        var reference = ProxiedBytes(seed: 7)
        let first = reference.next(100_000)
        let head = Array(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n".utf8)
        XCTAssertEqual(Array(answers.prefix(head.count)), head)
        XCTAssertEqual(Array(answers[head.count..<(head.count + 100_000)]), first, "seed 7's bytes")
        let tail = String(decoding: answers[(head.count + 100_000)...], as: UTF8.self)
        XCTAssertEqual(
            tail.components(separatedBy: "HTTP/1.1 200 OK").count, 3,
            "two more answers, then the close: \(tail.prefix(200))")
        XCTAssertEqual(backEnd.timesAsked(seed: 7), 2)
        XCTAssertEqual(backEnd.timesAsked(seed: 8), 1)
        XCTAssertEqual(backEnd.timesAsked(seed: 9), 0)

        // Anything else is a 404, counted nowhere.
        let other = try connect(port: port)
        defer { close(other) }
        let bad = "GET /other HTTP/1.1\r\nConnection: close\r\n\r\n"
        _ = send(other, bad, bad.utf8.count, 0)
        XCTAssertTrue(String(decoding: readAll(other), as: UTF8.self).hasPrefix("HTTP/1.1 404 Not Found"))
        // A campaign's proxies open thousands of connections: each one's socket goes with it.
        usleep(100_000)
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count, descriptors + 3,
            "the listener and the test's two sockets")
    }

    func testTheBytesDoNotDependOnHowTheyAreCut() {
        var whole = ProxiedBytes(seed: 42)
        var pieces = ProxiedBytes(seed: 42)
        var random = SplitMix64(seed: 1)
        var cut: [UInt8] = []
        while cut.count < 10_000 { cut += pieces.next(Int.random(in: 0...37, using: &random)) }
        XCTAssertEqual(Array(cut.prefix(10_000)), whole.next(10_000))
        var first = SplitMix64(seed: 42)
        XCTAssertEqual(Array(cut.prefix(8)), withUnsafeBytes(of: first.next().littleEndian) { Array($0) })
    }

    func testHeadsAndTargetsAreReadAsAProxySendsThem() {
        XCTAssertEqual(
            CountingBackEnd.parseHead(["GET /bytes/5?seed=1 HTTP/1.1\r", "Host: x\r"]),
            .init(target: "/bytes/5?seed=1", close: false))
        XCTAssertEqual(
            CountingBackEnd.parseHead(["GET /a HTTP/1.1\r", "Connection: Close\r"]), .init(target: "/a", close: true))
        XCTAssertEqual(CountingBackEnd.parseHead(["GET /a HTTP/1.0"]), .init(target: "/a", close: true))
        XCTAssertEqual(
            CountingBackEnd.parseHead(["GET /a HTTP/1.0", "connection: keep-alive"]), .init(target: "/a", close: false))
        XCTAssertEqual(CountingBackEnd.parseHead(["POST /a HTTP/1.1"]), .init(target: nil, close: true))
        XCTAssertEqual(CountingBackEnd.parseHead(["nonsense"]), .init(target: nil, close: true))

        XCTAssertEqual(ProxiedBytes.parse("/bytes/2000000?seed=77")?.length, 2_000_000)
        XCTAssertEqual(ProxiedBytes.parse("http://10.77.0.2:8081/proxy-once/bytes/9?seed=77")?.seed, 77)
        for bad in ["/bytes/9", "/bytes/x?seed=1", "/bytes/9?seed=", "/bytes/9?s=1", "/bytes/\(2 << 30)?seed=1"] {
            XCTAssertNil(ProxiedBytes.parse(bad), bad)
        }
    }

    func testEveryProxiedRequestOfACampaignHasASeedOfItsOwn() {
        var seen = Set<UInt64>()
        for round in 1...200 {
            for request in 0..<3007 where request % 1000 < 7 {
                seen.insert(ProxiedBytes.requestSeed(campaign: 20_261_209, round: round, request: request))
            }
        }
        XCTAssertEqual(seen.count, 200 * 4 * 7, "four prefixes' seven requests in each of 200 rounds")
        XCTAssertEqual(
            ProxiedBytes.requestSeed(campaign: 5, round: 2, request: 1),
            ProxiedBytes.requestSeed(campaign: 5, round: 2, request: 1), "the same campaign seed, the same requests")
    }

    /// Twice counts whatever the client's outcome; never counts only what was answered whole.
    func testTheTallyFindsRequestsAskedTwiceOrAnsweredFromTheLog() {
        let judged = [
            ProxiedTransfers.Judged(
                outcomes: [],
                requests: [
                    ("http://p/bytes/1?seed=1", true), ("http://p/bytes/1?seed=2", true),
                    ("http://p/bytes/1?seed=3", true),
                ]),
            ProxiedTransfers.Judged(
                outcomes: [], requests: [("http://p/bytes/1?seed=4", false), ("http://p/bytes/1?seed=5", false)]),
        ]
        let counts: [UInt64: Int] = [1: 1, 2: 2, 3: 0, 4: 0, 5: 3]
        let tally = ProxiedTransfers.tally(judged) { counts[$0] ?? 0 }
        XCTAssertEqual(tally.checked, 5)
        XCTAssertEqual(tally.twice, ["http://p/bytes/1?seed=2 (2 times)", "http://p/bytes/1?seed=5 (3 times)"])
        XCTAssertEqual(tally.never, ["http://p/bytes/1?seed=3"])
    }

    func testAProxiedRequestsReferenceIsTheBytesTheBackEndSends() throws {
        let resource = try ProxiedBytes.resource("http://10.77.0.2:8081/proxy-once/bytes/3000000?seed=99")
        var bytes = ProxiedBytes(seed: 99)
        let file = NSTemporaryDirectory() + "ftvm-proxied-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(bytes.next(3_000_000)).write(to: URL(fileURLWithPath: file))
        XCTAssertTrue(resource.matches(try Digest(file: file)))
        XCTAssertEqual(resource.length, 3_000_000)
    }

    private func connect(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Everything until the back end closes (or 10 s pass).
    private func readAll(_ fd: Int32) -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return all }
            all += buffer[..<count]
        }
    }
}
