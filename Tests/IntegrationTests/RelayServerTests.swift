import Foundation
import XCTest

/// Relay servers (docs/relay-servers.md): the guest's own connections to an end server in the
/// clients' network. The demo service's proxy (port 8090) and nginx's `proxy_pass` (8081,
/// `/proxy/`) fetch from Tests/tools/backend.py, which counts the connections and requests it
/// sees. A failover must leave the client's download byte-exact on its own connection and the
/// back end with one request per client request.
///
/// Needs an image built from this checkout (the proxy is new): FTVM_TEST_IMAGE_DIR.
final class RelayServerTests: SharedPairTestCase {
    override class var pair: String { "rsrv1" }
    override class var upOptions: [String] { ["--image", Harness.testImage] }

    private var backend: Backend!

    override func setUpWithError() throws {
        try super.setUpWithError()
        try Harness.waitUntilProtected(Self.pair)
        backend = try Backend(pair: Self.pair)
    }

    override func tearDownWithError() throws {
        backend = nil
        try super.tearDownWithError()
    }

    static let demoProxy = "http://\(Harness.serviceAddress):8090/proxy"
    static let nginxProxy = "http://\(Harness.serviceAddress):8081/proxy"

    /// No fault: requests on one client connection reach the back end once each, over one
    /// kept-alive connection of the proxy's.
    func testProxiedRequestsReachTheBackEndOnce() throws {
        let urls = [1, 2, 3].map { "\(Self.demoProxy)/bytes/\(100_000 * $0)?seed=\($0)" }
        var arguments = ["ip", "netns", "exec", "ftvm-\(Self.pair)", "curl", "-sS", "--fail", "--max-time", "60"]
        for (index, url) in urls.enumerated() { arguments += ["-o", "\(backend.directory)/get\(index)", url] }
        let output = try Harness.run(arguments)
        XCTAssertEqual(output.status, 0, output.combined)
        for index in 0..<3 {
            XCTAssertEqual(
                try Harness.sha256(file: "\(backend.directory)/get\(index)"),
                try Harness.referenceStreamSHA256(count: 100_000 * (index + 1), seed: UInt64(index + 1)))
        }
        let stats = try backend.stats()
        XCTAssertEqual(stats.requests.map(\.path), urls.map { String($0.dropFirst(Self.demoProxy.count)) })
        XCTAssertEqual(stats.connections, 1, "the proxy keeps its back-end connection alive")
        let wrapper = try XCTUnwrap(
            (try Harness.status(Self.pair)["log"] as? [String: Any])?["wrapper"] as? [String: Any])
        let relayServers = try XCTUnwrap(wrapper["relayServers"] as? [String: Any], "\(wrapper)")
        XCTAssertGreaterThanOrEqual(relayServers["logged"] as? Int ?? 0, 1, "the proxy's connection is logged")
    }

    /// The proxy's back-end connection carries three exchanges before the download it is
    /// fetching when the fault comes: the finished ones left the log (they are not sent again),
    /// and the new guest's connection is mapped onto the kept-alive one, at its last boundary.
    func testKeptAliveBackEndConnectionAcrossAFault() throws {
        let urls = [1, 2, 3].map { "\(Self.demoProxy)/bytes/\(50_000 * $0)?seed=\($0)" }
        var arguments = ["ip", "netns", "exec", "ftvm-\(Self.pair)", "curl", "-sS", "--fail", "--max-time", "60"]
        for url in urls { arguments += ["-o", "/dev/null", url] }
        XCTAssertEqual(try Harness.run(arguments).status, 0)
        sleep(2)  // the relay trims relay-server exchanges on its 1 s sweep
        try proxiedDownload(through: Self.demoProxy, fault: "kernel-panic", earlierRequests: 3)
    }

    func testDemoProxyDownloadAcrossKernelPanic() throws {
        try proxiedDownload(through: Self.demoProxy, fault: "kernel-panic")
    }

    func testDemoProxyDownloadAcrossServiceCrash() throws {
        try proxiedDownload(through: Self.demoProxy, fault: "service-crash")
    }

    func testDemoProxyDownloadAcrossQEMUKill() throws {
        try proxiedDownload(through: Self.demoProxy, fault: "qemu-kill")
    }

    func testDemoProxyDownloadAcrossKernelHang() throws {
        try proxiedDownload(through: Self.demoProxy, fault: "kernel-hang")
    }

    func testDemoProxyDownloadAcrossServiceHang() throws {
        try proxiedDownload(through: Self.demoProxy, fault: "service-hang")
    }

    func testDemoProxyDownloadAcrossAgentKill() throws {
        try proxiedDownload(through: Self.demoProxy, fault: "agent-kill")
    }

    /// Eight proxied downloads at once: the new guest opens its eight back-end connections again
    /// in its own order, and sends each request on whichever it likes; the relay sorts them
    /// out by their first bytes.
    func testEightConcurrentDemoProxyDownloadsAcrossKernelPanic() throws {
        try proxiedDownload(through: Self.demoProxy, fault: "kernel-panic", count: 8)
    }

    /// nginx, unmodified, as the relay server (`proxy_pass` with upstream keep-alive). A known
    /// weak point, run by hand (`FTVM_KNOWN_WEAK=1`): in 1 of 3 fresh-clone CI runs (2026-12-06)
    /// the back end was asked for the download twice (docs/relay-servers.md, "Weak points").
    func testNginxProxyDownloadAcrossKernelPanic() throws {
        try XCTSkipUnless(
            ProcessInfo.processInfo.environment["FTVM_KNOWN_WEAK"] == "1",
            "known weak point (docs/relay-servers.md): FTVM_KNOWN_WEAK=1 runs it")
        try proxiedDownload(through: Self.nginxProxy, fault: "kernel-panic")
    }

    func testNginxProxyDownloadAcrossServiceCrash() throws {
        try proxiedDownload(through: Self.nginxProxy, fault: "service-crash")
    }

    func testEightConcurrentNginxProxyDownloadsAcrossKernelPanic() throws {
        try proxiedDownload(through: Self.nginxProxy, fault: "kernel-panic", count: 8)
    }

    /// A POST the back end holds (it answers 3 s after the body is in) when the primary fails:
    /// the new guest re-sends it, the relay checks it against what the back end has and drops
    /// it, and the back end's answer on the original connection reaches the client.
    func testPOSTThroughTheProxyAcrossAFaultReachesTheBackEndOnce() throws {
        try proxiedPOSTs(count: 1)
    }

    /// Four such POSTs at once, each of its own 1 MiB body: the new guest's proxy re-sends them
    /// on back-end connections it opens in its own order, and each request is longer than a
    /// segment, so the relay tells which logged connection each is from its first 1024 bytes.
    func testFourConcurrentPOSTsThroughTheProxyAcrossAFault() throws {
        try proxiedPOSTs(count: 4)
    }

    // MARK: Keep-alive sessions through nginx (issue 24)

    func testProxiedSessionsAcrossKernelPanic() throws { try proxiedSessions(across: "kernel-panic") }

    /// It runs after the kernel-panic one, whose sessions asked for the same seeds: their ended
    /// back-end connections, still kept, once answered this test's last requests from the log
    /// (docs/relay-servers.md, "Weak points").
    func testProxiedSessionsAcrossQEMUKill() throws { try proxiedSessions(across: "qemu-kill") }

    func testProxiedSessionsAcrossAnUpgrade() throws { try proxiedSessions(across: "upgrade") }

    /// A known weak point, run by hand (`FTVM_KNOWN_WEAK=1`): a request or two still reaches the
    /// back end twice in about half the runs (docs/relay-servers.md, "Weak points").
    func testProxiedSessionsAcrossADaemonKilledInATakeover() throws {
        try XCTSkipUnless(
            ProcessInfo.processInfo.environment["FTVM_KNOWN_WEAK"] == "1",
            "known weak point (docs/relay-servers.md): FTVM_KNOWN_WEAK=1 runs it")
        try proxiedSessions(across: "daemon-kill")
    }

    func testZZZDownLeavesNothingBehind() throws { try downLeavesNothingBehind() }

    static let nginxOnce = "http://\(Harness.serviceAddress):8081/proxy-once"

    /// Keep-alive sessions of proxied requests through nginx (Tests/tools/proxied_session.py,
    /// every answer checked), two where nginx opens one back-end connection per request
    /// (`/proxy-once/`: no upstream keep-alive, its default) and one through its kept-alive
    /// upstream (`/proxy/`), and a paced download through `/proxy-once/`, across `fault`.
    /// At a fault the log holds finished back-end exchanges beside the ones in flight, and nginx
    /// re-sends requests that never reached the back end: the sessions must see no error and
    /// no status but 200, the download must be byte-exact, and the back end must see every
    /// request exactly once.
    private func proxiedSessions(across fault: String) throws {
        let previous = try Harness.status(Self.pair)["lastRecovery"] as? [String: Any]
        let stop = "\(backend.directory)/stop"
        let script = Harness.repository.appendingPathComponent("Tests/tools/proxied_session.py").path
        let size = 150_000
        let sessions = ["/proxy-once", "/proxy-once", "/proxy"].enumerated().map { index, prefix in
            BackgroundReport {
                let output = try Harness.run([
                    "ip", "netns", "exec", "ftvm-\(Self.pair)", "python3", script, Harness.serviceAddress, "8081",
                    prefix, "--size", "\(size)", "--seed", "\(1_000_000 * (index + 1))", "--stop", stop,
                ])
                return ["status": output.status, "stdout": output.stdout, "stderr": output.stderr]
            }
        }
        let download = try Harness.Download(
            pair: Self.pair, size: 24 << 20, seed: UInt64.random(in: 1...999_999), rate: "4M", base: Self.nginxOnce)
        let started = Date()
        while download.bytesWritten < 1 << 20, Date().timeIntervalSince(started) < 60 { usleep(50_000) }
        switch fault {
        case "upgrade":
            try Harness.ftvm([
                "upgrade", "--name", Self.pair, "--image", Harness.testImage, "--drain-timeout", "3",
                "--ready-timeout", "300",
            ])
        case "daemon-kill":
            // A kernel panic, the daemon SIGKILLed inside the takeover, and the next one adopts.
            let daemon = Int32(try XCTUnwrap(try Harness.status(Self.pair)["daemonPID"] as? Int))
            try Harness.ftvm(["inject", "kernel-panic", "--name", Self.pair])
            usleep(150_000)
            XCTAssertEqual(kill(daemon, SIGKILL), 0)
            while kill(daemon, 0) == 0 { usleep(10_000) }
            try Harness.ftvm(["up", "--name", Self.pair] + Self.upOptions)
        default:
            try Harness.ftvm(["inject", fault, "--name", Self.pair])
        }
        try download.check()
        try Harness.waitUntilProtected(Self.pair)
        sleep(2)  // the sessions carry on with the new primary
        FileManager.default.createFile(atPath: stop, contents: nil)
        var asked: [String] = ["/bytes/\(24 << 20)?seed=\(download.seed)"]
        for session in sessions {
            let result = try session.wait(seconds: 120)
            let report = try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data((result["stdout"] as? String ?? "").utf8))
                    as? [String: Any], "\(result)")
            XCTAssertTrue(report["error"] is NSNull, "the session saw no error: \(report)")
            XCTAssertEqual(report["statuses"] as? [String: Int], ["200": report["answered"] as? Int ?? -1])
            XCTAssertGreaterThan(report["answered"] as? Int ?? 0, 5, "\(report)")
            asked += (report["seeds"] as? [Int] ?? []).map { "/bytes/\(size)?seed=\($0)" }
        }
        let stats = try backend.stats()
        let seen = Dictionary(stats.requests.map { ($0.path, 1) }, uniquingKeysWith: +)
        let notOnce = asked.filter { seen[$0] != 1 }.map { path in
            let at = stats.requests.indices.filter { stats.requests[$0].path == path }
            return
                "\(path): \(at.map { "request \($0) of \(stats.requests.count) on #\(stats.requests[$0].connection)" })"
        }
        XCTAssertEqual(notOnce, [], "every request reaches the back end exactly once")
        XCTAssertEqual(stats.requests.count, asked.count, "and nothing else does")
        if fault != "upgrade" { try checkReplay(after: previous, connections: 1) }
        print("relay servers: sessions across \(fault): \(asked.count) requests, back end saw \(stats.summary)")
    }

    /// `count` POSTs through the demo proxy that the back end holds (it answers some seconds
    /// after the body is in) when the primary fails: the new guest re-sends each, the relay
    /// checks it against what the back end has and drops it, and the back end's answer on the
    /// original connection reaches the client.
    private func proxiedPOSTs(count: Int) throws {
        let size = 1 << 20
        var bodies: [String] = []
        for index in 0..<count {
            let body = "\(backend.directory)/body-\(index)"
            try Data((0..<size).map { UInt8(truncatingIfNeeded: ($0 &+ index) &* 2_654_435_761 >> 13) }).write(
                to: URL(fileURLWithPath: body))
            bodies.append(body)
        }
        let previous = try Harness.status(Self.pair)["lastRecovery"] as? [String: Any]
        let namespace = "ftvm-\(Self.pair)"
        let delay = count == 1 ? 3 : 6
        let uploads = bodies.map { body in
            BackgroundReport {
                let output = try Harness.run([
                    "ip", "netns", "exec", namespace, "curl", "-sS", "--fail", "--max-time", "60",
                    "--data-binary", "@\(body)", "\(Self.demoProxy)/sha256?delay=\(delay)",
                ])
                return ["status": output.status, "stdout": output.stdout, "stderr": output.stderr]
            }
        }
        let started = Date()
        while try backend.stats().requests.filter({ $0.method == "POST" && $0.bytes == size }).count < count,
            Date().timeIntervalSince(started) < 30
        {
            usleep(50_000)
        }
        try Harness.ftvm(["inject", "kernel-panic", "--name", Self.pair])
        for (upload, body) in zip(uploads, bodies) {
            let result = try upload.wait(seconds: 90)
            XCTAssertEqual(result["status"] as? Int32, 0, "\(result)")
            XCTAssertEqual(
                (result["stdout"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines),
                try Harness.sha256(file: body))
        }
        let stats = try backend.stats()
        XCTAssertEqual(stats.requests.filter { $0.method == "POST" }.count, count, "\(stats)")
        XCTAssertTrue(stats.requests.allSatisfy(\.complete), "\(stats)")
        XCTAssertEqual(Set(stats.requests.map(\.connection)).count, count, "\(stats)")
        try checkReplay(after: previous, connections: 2 * count)
        print("relay servers: \(count) POST(s) of \(size) bytes across kernel-panic, back end saw \(stats.summary)")
    }

    /// The takeover's replay carried the client connections and the proxy's connections (at
    /// least `connections` spliced or still awaiting the new guest) and reset nothing.
    @discardableResult
    private func checkReplay(
        after previous: [String: Any]?, connections: Int = 2, file: StaticString = #filePath, line: UInt = #line
    )
        throws -> [String: Any]
    {
        let recovery = try Harness.recovery(Self.pair, after: previous, file: file, line: line)
        let replay = try XCTUnwrap(recovery["replay"] as? [String: Any], file: file, line: line)
        XCTAssertEqual(replay["reset"] as? Int, 0, "\(replay)", file: file, line: line)
        // (A back-end connection the new guest opens again only after the last client connection
        // is spliced is counted as awaiting; the back end's counts say whether it was claimed.)
        XCTAssertGreaterThanOrEqual(
            (replay["spliced"] as? Int ?? 0) + (replay["awaitingReopen"] as? Int ?? 0), connections, "\(replay)",
            file: file, line: line)
        return replay
    }

    /// `count` downloads through the proxy at once, paced, with a fault in their middle: each
    /// must finish byte-exact on its connection, and the back end must have seen one request
    /// for each, on one connection.
    private func proxiedDownload(
        through base: String, fault: String, count: Int = 1, earlierRequests: Int = 0
    ) throws {
        // (A proxied response stays in the log until its exchange completes: eight at once of
        // 12 MiB fit the default 128 MiB log, eight of 24 MiB would not.)
        let size = count == 1 ? 24 << 20 : 12 << 20
        let previous = try Harness.status(Self.pair)["lastRecovery"] as? [String: Any]
        let downloads = try (0..<count).map { _ in
            try Harness.Download(
                pair: Self.pair, size: size, seed: UInt64.random(in: 1...1_000_000), rate: count == 1 ? "4M" : "1M",
                base: base)
        }
        let started = Date()
        while downloads.contains(where: { $0.bytesWritten < 1 << 20 }), Date().timeIntervalSince(started) < 60 {
            usleep(50_000)
        }
        try Harness.ftvm(["inject", fault, "--name", Self.pair])
        for download in downloads { try download.check() }
        let stats = try backend.stats()
        for download in downloads {
            let path = "/bytes/\(size)?seed=\(download.seed)"
            XCTAssertEqual(stats.requests.filter { $0.path == path }.count, 1, "requests the back end saw: \(stats)")
        }
        XCTAssertEqual(stats.requests.count, earlierRequests + count, "requests the back end saw: \(stats)")
        // (A connection the new guest opened for a request the log carries is reset after its
        // handshake: the back end may count it, but it carries nothing.)
        XCTAssertEqual(Set(stats.requests.map(\.connection)).count, count, "connections with requests: \(stats)")
        // Every client connection is spliced; a back-end connection only if its answer was still
        // coming (one the old guest had whole is not opened again).
        let replay = try checkReplay(after: previous, connections: count == 1 ? 2 : count)
        // The premise: each download was still coming when the fault struck.
        let timings = replay["connectionTimings"] as? [[String: Any]] ?? []
        let regenerated = timings.filter {
            !($0["connection"] as? String ?? "").contains(":9000→") && ($0["regeneratedBytes"] as? Int ?? 0) > 0
        }
        XCTAssertEqual(regenerated.count, count, "client connections with a response to regenerate: \(timings)")
        print("relay servers: \(fault): \(count) × \(size) bytes through \(base), back end saw \(stats.summary)")
    }
}

/// Tests/tools/backend.py in the pair's client namespace, on 10.77.0.1:9000 (where the image's
/// proxies send), with its stats in a temporary directory.
final class Backend {
    struct Request: Equatable {
        var method: String
        var path: String
        var connection: Int
        /// The body received (POST) or sent (GET) so far.
        var bytes: Int
        var complete: Bool
    }

    struct Stats: CustomStringConvertible {
        var connections: Int
        var closed: Int
        var requests: [Request]
        var summary: String { "\(connections) connection(s), \(requests.count) request(s)" }
        var description: String { "\(summary): \(requests.map { "\($0.method) \($0.path) #\($0.connection)" })" }
    }

    let directory = NSTemporaryDirectory() + "ftvm-backend-\(UUID().uuidString)"
    private let process = Process()

    init(pair: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = Harness.repository.appendingPathComponent("Tests/tools/backend.py").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "ip", "netns", "exec", "ftvm-\(pair)", "python3", script, "--listen", "10.77.0.1:9000", "--stats",
            "\(directory)/stats.json",
        ]
        try process.run()
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: "\(directory)/stats.json") { usleep(50_000) }
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    func stats() throws -> Stats {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/stats.json"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let requests = (object["requests"] as? [[String: Any]] ?? []).map {
            Request(
                method: $0["method"] as? String ?? "", path: $0["path"] as? String ?? "",
                connection: $0["connection"] as? Int ?? 0, bytes: $0["bytes"] as? Int ?? 0,
                complete: $0["complete"] as? Bool ?? false)
        }
        return Stats(
            connections: object["connections"] as? Int ?? -1, closed: object["closed"] as? Int ?? -1,
            requests: requests)
    }
}
