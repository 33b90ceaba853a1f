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
    }
}

/// Tests/tools/backend.py in the pair's client namespace, on 10.77.0.1:9000 (where the image's
/// proxies send), with its stats in a temporary directory.
final class Backend {
    struct Request: Equatable {
        var method: String
        var path: String
        var connection: Int
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
                connection: $0["connection"] as? Int ?? 0, complete: $0["complete"] as? Bool ?? false)
        }
        return Stats(
            connections: object["connections"] as? Int ?? -1, closed: object["closed"] as? Int ?? -1,
            requests: requests)
    }
}
