import Foundation
import XCTest

/// The daemon is killed with SIGKILL mid-download and started again: it adopts the running
/// guests (same domains, same ports, same tap), re-attaches the connection log (the download's
/// record is still there), and the download completes byte-exact on the same TCP connection
/// (TCP retransmission covers the gap), across a kernel panic the new daemon takes over from.
final class RestartTests: PairTestCase {
    override var pair: String { "itrs" }

    func testDaemonKilledMidDownloadIsAdoptedAndTheDownloadCompletes() throws {
        try Harness.ftvm(["up", "--name", pair])
        let before = try Harness.status(pair)
        let pid = try XCTUnwrap(before["daemonPID"] as? Int)
        let guests = try XCTUnwrap(before["guests"] as? [[String: Any]])

        // A download slowed down so it is certainly in flight while the daemon is dead.
        let download = try Harness.Download(pair: pair, size: 24_000_000, seed: 99)
        sleep(2)
        let logged = try Harness.connections(pair)
        XCTAssertEqual(logged.count, 1, "the download is in the connection log: \(logged)")

        XCTAssertEqual(kill(Int32(pid), SIGKILL), 0)
        usleep(500_000)
        XCTAssertTrue(download.process.isRunning, "the download must still be in flight when the daemon dies")
        XCTAssertLessThan(download.bytesWritten, download.size, "the download had not finished")

        try Harness.ftvm(["up", "--name", pair])
        let after = try Harness.status(pair)
        XCTAssertNotEqual(after["daemonPID"] as? Int, pid, "a new daemon")
        XCTAssertEqual(after["protected"] as? Bool, true)
        let adopted = try XCTUnwrap(after["guests"] as? [[String: Any]])
        XCTAssertEqual(
            adopted.map { $0["domain"] as? String }, guests.map { $0["domain"] as? String }, "the same guests, adopted")
        let reattached = try Harness.connections(pair)
        XCTAssertEqual(
            reattached.map { $0["client"] as? String }, logged.map { $0["client"] as? String },
            "the log was re-attached, not recreated")
        XCTAssertEqual(reattached.first?["clientISN"] as? Int, logged.first?["clientISN"] as? Int)

        // A fault while the download is still in flight: the new daemon resumes its open
        // response with a range, from the head the first daemon kept beside the log.
        XCTAssertTrue(download.process.isRunning, "the download must still be in flight at the fault")
        try Harness.ftvm(["inject", "kernel-panic", "--name", pair])
        var recovery: [String: Any]?
        for _ in 0..<300 where recovery?["replay"] == nil {
            usleep(100_000)
            recovery = try Harness.status(pair)["lastRecovery"] as? [String: Any]
        }
        try download.check()
        let replay = try XCTUnwrap(recovery?["replay"] as? [String: Any], "no replay within 30 s: \(recovery ?? [:])")
        let timings = replay["connectionTimings"] as? [[String: Any]] ?? []
        XCTAssertEqual(replay["rangeResumed"] as? Int, 1, "resumed with a range after the restart: \(replay)")
        XCTAssertGreaterThan(timings.first?["resumedAt"] as? Int ?? 0, 1 << 20, "\(timings)")
        XCTAssertLessThan(
            timings.first?["regeneratedBytes"] as? Int ?? .max, (timings.first?["resumedAt"] as? Int ?? 0) / 4,
            "the backup re-sent far fewer bytes than the client had: \(timings)")
    }
}
