import Foundation
import XCTest

/// One real pair, every fault type: inject into the primary, then the former backup serves a
/// fresh connection byte-exact, status names the cause and the phases, and a fresh paused
/// backup protects the pair again. Tests run against the same pair one after another, so each
/// also proves the pair survives the faults before it.
final class FailoverTests: SharedPairTestCase {
    override class var pair: String { "itfo" }

    func testKernelPanic() throws { try survive("kernel-panic", cause: "kernel panic") }
    func testKernelHang() throws { try survive("kernel-hang", cause: "heartbeat stalled") }
    func testServiceCrash() throws { try survive("service-crash", cause: "service demo killed by signal 9") }
    func testServiceHang() throws { try survive("service-hang", cause: "service demo stopped answering") }
    func testQEMUKill() throws { try survive("qemu-kill", cause: "QEMU process gone") }
    func testAgentKill() throws { try survive("agent-kill", cause: "heartbeat stalled") }

    func testTwoFaultsInARow() throws {
        try survive("service-crash", cause: "service demo killed")
        try survive("kernel-panic", cause: "kernel panic")
    }

    func testPlannedFailover() throws {
        let before = try protectedStatus()
        try Harness.ftvm(["failover", "--name", Self.pair])
        try checkTakeover(from: before, cause: "planned failover", injected: nil)
    }

    func testUnknownFaultIsRejected() throws {
        let output = try Harness.run([Harness.ftvm, "inject", "disk-fire", "--name", Self.pair])
        XCTAssertNotEqual(output.status, 0)
        XCTAssertTrue(output.combined.contains("kernel-panic"), "lists the valid faults: \(output.combined)")
    }

    func testZZZDownLeavesNothingBehind() throws { try downLeavesNothingBehind() }

    // MARK: Steps

    private func survive(_ fault: String, cause: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try protectedStatus()
        let injected = try Harness.ftvm(["inject", fault, "--name", Self.pair], file: file, line: line)
        XCTAssertTrue(injected.stdout.contains("injected \(fault) into"), injected.stdout, file: file, line: line)
        try checkTakeover(from: before, cause: cause, injected: fault, file: file, line: line)
    }

    /// Waits for the pair to be protected and returns its status. Not protected within 120 s is a
    /// failure, also before a fault: after the previous test's takeover, re-protection is what
    /// that test promised.
    private func protectedStatus() throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(120)
        var status: [String: Any] = [:]
        while Date() < deadline {
            status = try Harness.status(Self.pair)
            if status["protected"] as? Bool == true { return status }
            usleep(250_000)
        }
        throw TestFailure(description: "pair \(Self.pair) is not protected after 120 s: \(status)")
    }

    private func checkTakeover(
        from before: [String: Any], cause: String, injected: String?, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let guests = try XCTUnwrap(before["guests"] as? [[String: Any]])
        let oldPrimary = try XCTUnwrap(guests.first { $0["role"] as? String == "primary" }?["domain"] as? String)
        let oldBackup = try XCTUnwrap(guests.first { $0["role"] as? String == "backup" }?["domain"] as? String)
        let recoveries = before["recoveries"] as? Int ?? 0
        let namespace = try XCTUnwrap(before["namespace"] as? String)
        let address = try XCTUnwrap(before["serviceAddress"] as? String)

        // Within a bounded time, a fresh connection is served byte-exact: by the former backup.
        let deadline = Date().addingTimeInterval(30)
        var status: [String: Any] = [:]
        while Date() < deadline {
            status = try Harness.status(Self.pair)
            if status["recoveries"] as? Int == recoveries + 1 { break }
            usleep(50_000)
        }
        XCTAssertEqual(status["recoveries"] as? Int, recoveries + 1, "no takeover within 30 s", file: file, line: line)
        let seed = UInt64.random(in: 1...1_000_000)
        let fetched = try Harness.run([
            "ip", "netns", "exec", namespace, "curl", "-sS", "--fail", "--max-time", "30", "--retry", "3",
            "--retry-all-errors", "http://\(address)/bytes/500000?seed=\(seed)",
        ])
        XCTAssertEqual(fetched.status, 0, fetched.stderr, file: file, line: line)
        let got = try Harness.run([
            "bash", "-c",
            "ip netns exec \(namespace) curl -sS --fail --max-time 30 'http://\(address)/bytes/500000?seed=\(seed)' | sha256sum",
        ])
        XCTAssertEqual(
            String(got.stdout.prefix(64)), try Harness.referenceStreamSHA256(count: 500_000, seed: seed), file: file,
            line: line)

        let recovery = try XCTUnwrap(status["lastRecovery"] as? [String: Any], file: file, line: line)
        XCTAssertTrue(
            (recovery["cause"] as? String ?? "").contains(cause), "cause: \(recovery)", file: file, line: line)
        XCTAssertEqual(recovery["failedDomain"] as? String, oldPrimary, file: file, line: line)
        XCTAssertEqual(recovery["newPrimary"] as? String, oldBackup, file: file, line: line)
        XCTAssertNil(recovery["error"], "\(recovery)", file: file, line: line)
        XCTAssertEqual(recovery["injectedFault"] as? String, injected, file: file, line: line)
        let phases = (recovery["phases"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertEqual(Array(phases.prefix(4)), ["fence", "switch", "resume", "first-packet"], file: file, line: line)

        // Re-protection: the old primary is gone, the new one runs, a fresh backup is paused.
        // The pair is protected once the backup is paused; the fenced primary is removed after
        // that (its QEMU takes a second or two to exit).
        let after = try protectedStatus()
        var domains = try Harness.virshDomains()
        let retired = Date().addingTimeInterval(30)
        while domains[oldPrimary] != nil, Date() < retired {
            usleep(250_000)
            domains = try Harness.virshDomains()
        }
        XCTAssertNil(
            domains[oldPrimary], "the failed primary is retired within 30 s: \(domains)", file: file, line: line)
        XCTAssertEqual(domains[oldBackup], "running", "\(domains)", file: file, line: line)
        let newGuests = try XCTUnwrap(after["guests"] as? [[String: Any]])
        XCTAssertEqual(
            newGuests.first { $0["role"] as? String == "primary" }?["domain"] as? String, oldBackup, file: file,
            line: line)
        let newBackup = try XCTUnwrap(newGuests.first { $0["role"] as? String == "backup" }?["domain"] as? String)
        XCTAssertEqual(domains[newBackup], "paused", "\(domains)", file: file, line: line)
        let finalRecovery = try XCTUnwrap(after["lastRecovery"] as? [String: Any])
        XCTAssertEqual(finalRecovery["reprotected"] as? Bool, true, file: file, line: line)
    }
}
