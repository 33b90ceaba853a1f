import Foundation
import XCTest

/// Boots a real pair through libvirt and checks it end to end: roles and states as libvirt
/// reports them, byte-exact service through the client namespace, and a clean `down`.
final class PairLifecycleTests: PairTestCase {
    override var pair: String { "itup" }

    func testUpServesThroughTheNamespaceAndDownLeavesNothing() throws {
        try Harness.ftvm(["up", "--name", pair])

        // libvirt's own view: primary running, backup paused.
        let domains = try Harness.virshDomains()
        XCTAssertEqual(domains["ftvm-\(pair)-1"], "running", "\(domains)")
        XCTAssertEqual(domains["ftvm-\(pair)-2"], "paused", "\(domains)")

        let status = try Harness.status(pair)
        XCTAssertEqual(status["protected"] as? Bool, true)
        let namespace = try XCTUnwrap(status["namespace"] as? String)
        let address = try XCTUnwrap(status["serviceAddress"] as? String)
        let guests = try XCTUnwrap(status["guests"] as? [[String: Any]])
        XCTAssertEqual(guests.map { $0["role"] as? String }, ["primary", "backup"])
        XCTAssertEqual(guests.map { $0["state"] as? String }, ["running", "paused"])
        XCTAssertGreaterThan(guests[0]["heartbeat"] as? Int ?? 0, 0, "the primary's agent beats")
        let client = ["ip", "netns", "exec", namespace, "curl", "-sS", "--fail", "--max-time", "300"]

        // A download, checked against the independent reference.
        let size = 3_000_001
        let seed: UInt64 = 1_234_567
        let file = NSTemporaryDirectory() + "ftvm-itest-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let download = try Harness.run(client + ["-o", file, "http://\(address)/bytes/\(size)?seed=\(seed)"])
        XCTAssertEqual(download.status, 0, download.stderr)
        XCTAssertEqual(try Harness.sha256(file: file), try Harness.referenceStreamSHA256(count: size, seed: seed))

        // An upload: the service's digest must equal sha256sum's of the same bytes.
        let upload = NSTemporaryDirectory() + "ftvm-itest-up-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: upload) }
        let bytes = (0..<1_500_000).map { _ in UInt8.random(in: 0...255) }
        try Data(bytes).write(to: URL(fileURLWithPath: upload))
        let posted = try Harness.run(client + ["--data-binary", "@\(upload)", "http://\(address)/sha256"])
        XCTAssertEqual(posted.status, 0, posted.stderr)
        XCTAssertEqual(posted.stdout.trimmingCharacters(in: .whitespacesAndNewlines), try Harness.sha256(file: upload))

        // The unmodified third-party server (busybox httpd) on 8080.
        let blob = NSTemporaryDirectory() + "ftvm-itest-blob-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: blob) }
        let fetched = try Harness.run(client + ["-o", blob, "http://\(address):8080/blob.bin"])
        XCTAssertEqual(fetched.status, 0, fetched.stderr)
        XCTAssertEqual(try Harness.sha256(file: blob), try Harness.sha256(file: Harness.defaultImage + "/www/blob.bin"))

        let version = try Harness.run(client + ["http://\(address)/version"])
        XCTAssertEqual(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "1.0.0")

        try Harness.ftvm(["down", "--name", pair])
        XCTAssertEqual(try Harness.leftovers(of: pair), [])
    }
}

/// Bad input fails fast, says what to do, and makes nothing.
final class PairFailureTests: PairTestCase {
    override var pair: String { "itbad" }

    func testMissingImageFailsClearlyAndLeavesNothing() throws {
        let output = try Harness.run([Harness.ftvm, "up", "--name", pair, "--image", "/nonexistent/image"])
        XCTAssertNotEqual(output.status, 0)
        XCTAssertTrue(output.combined.contains("no guest image at /nonexistent/image"), output.combined)
        XCTAssertTrue(output.combined.contains("images/build.sh"), "says how to fix it: \(output.combined)")
        XCTAssertEqual(try Harness.leftovers(of: pair), [])
    }

    func testUnreachableLibvirtFailsClearlyAndLeavesNothing() throws {
        // The same failure as a stopped libvirtd, without stopping the machine's libvirtd.
        let output = try Harness.run(
            [Harness.ftvm, "up", "--name", pair],
            environment: ["FTVM_LIBVIRT_URI": "qemu+unix:///system?socket=/nonexistent/libvirt-sock"])
        XCTAssertNotEqual(output.status, 0)
        XCTAssertTrue(output.combined.contains("libvirtd is not running"), output.combined)
        XCTAssertEqual(try Harness.leftovers(of: pair), [])
    }

    func testBadNameIsRejected() throws {
        let output = try Harness.run([Harness.ftvm, "up", "--name", "Bad_Name"])
        XCTAssertNotEqual(output.status, 0)
        XCTAssertTrue(output.combined.contains("invalid pair name"), output.combined)
    }
}
