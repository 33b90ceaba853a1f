import Foundation
import PrometheusText
import XCTest

/// A primary whose QEMU the host does not let run is starved, not failed: its heartbeat is
/// judged in the time its vCPU could run (docs/failover.md, "Starved, not hung"), and so is its
/// data path. The same pair's hung kernel is still failed over as fast as before. (A CPU quota's
/// throttling is measured by scripts/bench_starvation.py, not here: under the load of a CI run a
/// guest held to 5 % of a CPU was still failed over, docs/failover.md.)
final class StarvationTests: PairTestCase {
    override var pair: String { "itsv" }

    func testStoppedQEMUIsNotFailedOverAndAHungKernelStillIs() throws {
        try Harness.ftvm(["up", "--name", pair])
        try Harness.waitUntilProtected(pair)
        let before = try Harness.status(pair)
        let primary = try XCTUnwrap(primaryDomain(before))
        let recoveries = before["recoveries"] as? Int ?? 0
        let metrics = try XCTUnwrap(before["metricsAddress"] as? String, "status has no metrics address")
        XCTAssertEqual(try stallsForgiven(metrics), 0)

        // A paced download in flight across the stop: it must carry on from the same primary.
        let download = try Harness.Download(pair: pair, size: 24_000_000, seed: 2207)
        while download.bytesWritten < 1_000_000, download.process.isRunning { usleep(50_000) }

        // This pair's primary's QEMU only, by the pid libvirt wrote for it.
        let pidText = try String(contentsOfFile: "/run/libvirt/qemu/\(primary).pid", encoding: .utf8)
        let qemu = try XCTUnwrap(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertEqual(kill(qemu, SIGSTOP), 0)
        usleep(1_500_000)
        let atStop = download.bytesWritten
        XCTAssertEqual(kill(qemu, SIGCONT), 0)
        sleep(3)

        let after = try Harness.status(pair)
        XCTAssertEqual(after["recoveries"] as? Int, recoveries, "no failover: \(after["lastRecovery"] ?? "none")")
        XCTAssertEqual(try primaryDomain(after), primary)
        XCTAssertEqual(after["protected"] as? Bool, true)
        XCTAssertGreaterThan(download.bytesWritten, atStop, "the download goes on after SIGCONT")
        XCTAssertGreaterThanOrEqual(try stallsForgiven(metrics) ?? 0, 1, "the stop was seen, and forgiven")

        try download.check()

        // Stopped for 4 s while a new client's SYN waits: past the data path's 3 s, which is
        // judged in the time QEMU could run too. The request is answered once QEMU runs again.
        let pair = self.pair
        XCTAssertEqual(kill(qemu, SIGSTOP), 0)
        let request = BackgroundReport {
            let fetched = try Harness.run([
                "ip", "netns", "exec", "ftvm-\(pair)", "curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w",
                "%{http_code}", "http://\(Harness.serviceAddress)/bytes/1000?seed=3",
            ])
            return ["status": fetched.status, "code": fetched.stdout, "stderr": fetched.stderr]
        }
        usleep(4_000_000)
        XCTAssertEqual(kill(qemu, SIGCONT), 0)
        let answered = try request.wait(seconds: 40)
        XCTAssertEqual(answered["code"] as? String, "200", "\(answered)")
        let stoppedAfter = try Harness.status(pair)
        XCTAssertEqual(
            stoppedAfter["recoveries"] as? Int, recoveries,
            "no failover for a data path that waited on a stopped QEMU: \(stoppedAfter["lastRecovery"] ?? "none")")

        // A hung kernel on the same primary is still failed over.
        try Harness.ftvm(["inject", "kernel-hang", "--name", pair])
        var status: [String: Any] = [:]
        for _ in 0..<300 where status["recoveries"] as? Int != recoveries + 1 {
            usleep(100_000)
            status = try Harness.status(pair)
        }
        let recovery = try XCTUnwrap(status["lastRecovery"] as? [String: Any], "no takeover within 30 s")
        XCTAssertTrue((recovery["cause"] as? String ?? "").contains("heartbeat stalled"), "\(recovery)")
        XCTAssertEqual(recovery["failedDomain"] as? String, primary)
        // (How fast is measured by hand, docs/failover.md: no timed assertion on a busy host.)
    }

    private func primaryDomain(_ status: [String: Any]) throws -> String? {
        let guests = try XCTUnwrap(status["guests"] as? [[String: Any]])
        return guests.first { $0["role"] as? String == "primary" }?["domain"] as? String
    }

    private func stallsForgiven(_ address: String) throws -> Double? {
        let body = try Harness.run(["curl", "-sS", "--fail", "--max-time", "10", "http://\(address)/metrics"])
        XCTAssertEqual(body.status, 0, body.stderr)
        return try Exposition(body.stdout).value("ftvm_heartbeat_stalls_forgiven_total", ["pair": pair])
    }
}
