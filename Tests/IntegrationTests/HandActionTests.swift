import Foundation
import XCTest

/// libvirt is the source of truth: what an operator does to the pair's guests with `virsh`, and
/// a daemon killed in the middle of a recovery, are followed by the daemon, and its status says
/// so at once (docs/failover.md, "Changes made outside ftvm").
final class HandActionTests: SharedPairTestCase {
    override class var pair: String { "ithand" }
    private var pair: String { Self.pair }

    private func virsh(_ arguments: String...) throws {
        let output = try Harness.run(["virsh", "-c", "qemu:///system"] + arguments)
        XCTAssertEqual(output.status, 0, "virsh \(arguments.joined(separator: " ")): \(output.combined)")
    }

    private func guest(_ role: String, in status: [String: Any]) throws -> String {
        let guests = try XCTUnwrap(status["guests"] as? [[String: Any]])
        return try XCTUnwrap(guests.first { $0["role"] as? String == role }?["domain"] as? String, "no \(role)")
    }

    private func handled(_ key: String) throws -> Int {
        (try Harness.status(pair)["handled"] as? [String: Any])?[key] as? Int ?? 0
    }

    /// Polls the status until `condition` holds; throws, ending the test, when it does not
    /// within `seconds` (the later checks would only repeat that it did not).
    private func waitFor(
        _ what: String, seconds: Double = 30, _ condition: ([String: Any]) throws -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition(Harness.status(pair)) { return }
            usleep(20_000)
        }
        throw TestFailure(description: "\(what) not seen within \(seconds) s: \(try Harness.status(pair))")
    }

    /// A backup removed by hand (destroy, or undefine) makes the pair unprotected, with the
    /// reason, and a fresh backup is booted and paused.
    private func checkBackupReplaced(after action: (String) throws -> Void) throws {
        try Harness.waitUntilProtected(pair)
        let replacedBefore = try handled("backupsReplaced")
        let backup = try guest("backup", in: try Harness.status(pair))
        try action(backup)
        // The daemon changes its phase as soon as it sees the event; `ftvm status` may then wait for
        // libvirt while it destroys the lost guest's QEMU (about 1.5 s under TCG, more under load).
        // Unprotected and the reason are read from one status: re-protection may end it soon after.
        var status: [String: Any] = [:]
        try waitFor("unprotected") {
            status = $0
            return $0["protected"] as? Bool == false
        }
        XCTAssertTrue((status["degradedReason"] as? String ?? "").contains(backup), "the reason names it: \(status)")
        try Harness.waitUntilProtected(pair)
        let fresh = try guest("backup", in: try Harness.status(pair))
        XCTAssertNotEqual(fresh, backup, "a new backup")
        XCTAssertEqual(try Harness.virshDomains()[fresh], "paused")
        XCTAssertNil(try Harness.virshDomains()[backup], "the lost backup is gone from libvirt")
        XCTAssertEqual(try handled("backupsReplaced"), replacedBefore + 1)
    }

    func testABackupDestroyedByHandIsReplaced() throws {
        try checkBackupReplaced { try virsh("destroy", $0) }
    }

    func testBBackupUndefinedByHandIsReplaced() throws {
        try checkBackupReplaced { try virsh("undefine", $0) }
    }

    /// A backup resumed by hand is paused again. (Its frames never reach a client while it
    /// runs: the relay forwards only the connected guest's port, by construction.)
    func testCBackupResumedByHandIsPausedAgain() throws {
        try Harness.waitUntilProtected(pair)
        let backup = try guest("backup", in: try Harness.status(pair))
        let repausedBefore = try handled("backupsRepaused")
        try virsh("resume", backup)
        try waitFor("the backup paused again") { _ in try Harness.virshDomains()[backup] == "paused" }
        let after = try Harness.status(pair)
        XCTAssertEqual(after["protected"] as? Bool, true)
        XCTAssertEqual(try guest("backup", in: after), backup, "the same backup, kept")
        XCTAssertEqual((after["handled"] as? [String: Any])?["backupsRepaused"] as? Int, repausedBefore + 1)
    }

    /// A primary paused by hand serves nobody: the backup takes over, and a download in flight
    /// carries on byte-exact on the same connection.
    func testDPrimarySuspendedByHandFailsOver() throws {
        try Harness.waitUntilProtected(pair)
        let before = try Harness.status(pair)
        let primary = try guest("primary", in: before)
        let download = try Harness.Download(pair: pair, size: 16_000_000, seed: 7)
        sleep(2)
        try virsh("suspend", primary)
        try download.check()
        let recovery = try Harness.recovery(pair, after: before["lastRecovery"] as? [String: Any])
        XCTAssertTrue((recovery["cause"] as? String ?? "").contains("paused outside ftvm"), "\(recovery)")
        XCTAssertEqual(recovery["failedDomain"] as? String, primary)
        XCTAssertEqual((recovery["replay"] as? [String: Any])?["spliced"] as? Int, 1, "\(recovery)")
    }

    private func daemonPID() throws -> Int32 {
        Int32(try XCTUnwrap(try Harness.status(pair)["daemonPID"] as? Int))
    }

    private func killDaemon(_ pid: Int32) {
        XCTAssertEqual(kill(pid, SIGKILL), 0)
        while kill(pid, 0) == 0 { usleep(10_000) }
    }

    /// The daemon is SIGKILLed while it handles a kernel panic: as soon as its status says
    /// "failing-over"; the next `ftvm up` finishes the recovery: the open download is replayed
    /// into the backup from the log that survived in shared memory. That the kill landed inside
    /// the takeover is checked, not assumed: the phase just before it, the next daemon's note after.
    func testEDaemonKilledDuringATakeoverIsFinishedByTheNextDaemon() throws {
        try Harness.waitUntilProtected(pair)
        let daemon = try daemonPID()
        // Chunked, so the replay regenerates the ~6 MB the client has: resumed with a range, a
        // takeover took under 100 ms, and the kill landed after it.
        let download = try Harness.Download(pair: pair, size: 24_000_000, seed: 11, endpoint: "chunked")
        sleep(2)
        try Harness.ftvm(["inject", "kernel-panic", "--name", pair])
        // A takeover under TCG that regenerates megabytes (fence, resume, first packet, replay)
        // lasts far longer than the few milliseconds between this status read and the kill.
        try waitFor("the takeover under way (phase failing-over)") { $0["phase"] as? String == "failing-over" }
        killDaemon(daemon)
        XCTAssertTrue(download.process.isRunning, "the download is in flight while no daemon runs")
        try Harness.ftvm(["up", "--name", pair])
        XCTAssertNotEqual(try daemonPID(), daemon)
        try download.check()
        try Harness.waitUntilProtected(pair)
        let recovery = try XCTUnwrap(try Harness.status(pair)["lastRecovery"] as? [String: Any])
        XCTAssertTrue(
            (recovery["notes"] as? [String] ?? []).contains { $0.contains("found unfinished by a restarted daemon") },
            "the next daemon found the takeover unfinished, so the kill landed inside it: \(recovery)")
        XCTAssertTrue(
            (recovery["cause"] as? String ?? "").contains("kernel panic"),
            "the finished recovery keeps the cause that started it: \(recovery)")
        let running = try Harness.pairDomains(pair).filter { $0.value == "running" }
        XCTAssertEqual(running.count, 1, "one guest of the pair runs: \(running)")

        // Killed again once it is filed, the next daemon still reports it.
        let filed = try Harness.status(pair)
        killDaemon(try daemonPID())
        try Harness.ftvm(["up", "--name", pair])
        let after = try Harness.status(pair)
        XCTAssertEqual(after["recoveries"] as? Int, filed["recoveries"] as? Int)
        XCTAssertEqual(
            after["lastRecovery"] as? NSDictionary, filed["lastRecovery"] as? NSDictionary,
            "a restarted daemon reports the recovery the dead one filed")
    }

    /// A download runs; the daemon is SIGKILLed; `byHand` changes the guests while no daemon
    /// runs; `ftvm up` starts the next one. The download must finish byte-exact, and the recovery
    /// the new daemon ran must name the old primary, carry a note containing `note` and have
    /// spliced the download, and the pair be protected again. Returns the status then.
    private func recoverWithoutADaemon(
        seed: UInt64, rate: String, note: String, byHand: (_ primary: String, _ backup: String) throws -> Void
    ) throws -> [String: Any] {
        try Harness.waitUntilProtected(pair)
        let status = try Harness.status(pair)
        let (primary, backup) = (try guest("primary", in: status), try guest("backup", in: status))
        let download = try Harness.Download(pair: pair, size: 24_000_000, seed: seed, rate: rate)
        sleep(2)
        killDaemon(try daemonPID())
        try byHand(primary, backup)
        try Harness.ftvm(["up", "--name", pair])
        try download.check()
        // Re-protection retires the dead primary once the new backup is ready.
        try Harness.waitUntilProtected(pair)
        let after = try Harness.status(pair)
        let recovery = try XCTUnwrap(after["lastRecovery"] as? [String: Any])
        XCTAssertEqual(recovery["failedDomain"] as? String, primary, "\(recovery)")
        XCTAssertTrue((recovery["notes"] as? [String] ?? []).contains { $0.contains(note) }, "\(recovery)")
        XCTAssertEqual((recovery["replay"] as? [String: Any])?["spliced"] as? Int, 1, "\(recovery)")
        XCTAssertNil(try Harness.virshDomains()[primary], "the dead primary was removed")
        return after
    }

    /// The same, made certain: the primary is destroyed by hand while no daemon runs, beside the
    /// paused backup. The next daemon fails over to the backup and replays the download.
    func testEaDaemonDeadWhenThePrimaryDiesTheNextDaemonFailsOver() throws {
        _ = try recoverWithoutADaemon(seed: 13, rate: "3M", note: "restarted daemon") { primary, _ in
            try virsh("destroy", primary)
        }
    }

    /// With the daemon dead, the backup destroyed and the primary paused by hand, nothing can take
    /// over: the next daemon boots a fresh guest and replays the open download into it.
    func testFNoUsableBackupMeansAFreshGuestAndTheDownloadCarriesOn() throws {
        let after = try recoverWithoutADaemon(seed: 12, rate: "1M", note: "booted fresh") { primary, backup in
            try virsh("destroy", backup)
            try virsh("suspend", primary)
        }
        XCTAssertEqual((after["handled"] as? [String: Any])?["freshPrimaries"] as? Int, 1)
    }

    /// The primary's NIC goes down and the daemon is SIGKILLed just after, before its data-path
    /// clock ran out; the clients' neighbour entries for the service are gone, so they send only
    /// ARP requests. The next daemon sees the dead data path all the same (an unanswered ARP
    /// request for the service starts its clock), fails over, and the download carries on.
    func testGNetworkStallWithTheDaemonKilledIsDetectedByTheNextDaemon() throws {
        try Harness.waitUntilProtected(pair)
        let before = try Harness.status(pair)["lastRecovery"] as? [String: Any]
        let daemon = try daemonPID()
        let download = try Harness.Download(pair: pair, size: 24_000_000, seed: 15, rate: "2M")
        sleep(2)
        try Harness.ftvm(["inject", "network-stall", "--name", pair])
        usleep(200_000)
        killDaemon(daemon)
        let flushed = try Harness.run(["ip", "-n", "ftvm-\(pair)", "neigh", "flush", "all"])
        XCTAssertEqual(flushed.status, 0, flushed.combined)
        try Harness.ftvm(["up", "--name", pair])
        try download.check()
        let recovery = try Harness.recovery(pair, after: before)
        XCTAssertTrue(
            (recovery["cause"] as? String ?? "").contains("sent no frame"), "the data path's detector: \(recovery)")
        XCTAssertEqual((recovery["replay"] as? [String: Any])?["spliced"] as? Int, 1, "\(recovery)")
        let fresh = try Harness.run([
            "ip", "netns", "exec", "ftvm-\(pair)", "curl", "-sS", "--fail", "--max-time", "20", "-o", "/dev/null",
            "http://\(Harness.serviceAddress)/bytes/1000",
        ])
        XCTAssertEqual(fresh.status, 0, "a new connection reaches the service: \(fresh.combined)")
        try Harness.waitUntilProtected(pair)
    }

    /// The primary's NIC goes down while the only client is a paced download, which sends only
    /// ACKs (nothing that needs an answer): the relay's probe of the silent guest finds the dead
    /// data path within seconds (before, nothing did until curl's TCP keep-alive probe, 60 s on;
    /// `recovery` gives up after 30 s), and the download carries on.
    func testHNetworkStallUnderADownloadAloneIsFoundByTheRelaysProbe() throws {
        try Harness.waitUntilProtected(pair)
        let before = try Harness.status(pair)["lastRecovery"] as? [String: Any]
        let download = try Harness.Download(pair: pair, size: 24_000_000, seed: 16, rate: "2M")
        sleep(2)
        try Harness.ftvm(["inject", "network-stall", "--name", pair])
        let recovery = try Harness.recovery(pair, after: before)
        XCTAssertTrue(
            (recovery["cause"] as? String ?? "").contains("sent no frame"), "the data path's detector: \(recovery)")
        try download.check()
        try Harness.waitUntilProtected(pair)
    }

    func testZZZDownLeavesNothingBehind() throws { try downLeavesNothingBehind() }
}
