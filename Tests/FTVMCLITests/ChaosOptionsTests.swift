import FTVMSystem
import Glibc
import XCTest

@testable import FTVMCLI

/// `ftvm chaos` options as the command parses them: how many rounds a campaign plans, what it
/// refuses, and the progress line.
final class ChaosOptionsTests: XCTestCase {
    func testRoundsComeFromCountOrMinutes() throws {
        XCTAssertEqual(try Chaos.parse(["--name", "demo"]).rounds, 10, "10 by default")
        XCTAssertEqual(try Chaos.parse(["--name", "demo", "--count", "250"]).rounds, 250)
        XCTAssertEqual(
            try Chaos.parse(["--name", "demo", "--minutes", "90"]).rounds, 100_000, "--minutes alone: as many as fit")
        XCTAssertEqual(try Chaos.parse(["--name", "demo", "--minutes", "90", "--count", "40"]).rounds, 40)
    }

    func testBadExtentsAreRefusedWithTheirReason() {
        for (arguments, reason) in [
            (["--count", "0"], "--count must be 1-100000"),
            (["--minutes", "0"], "--minutes must be more than 0"),
            (["--minutes=-3"], "--minutes must be more than 0"),
            (["--minutes", "20000"], "at most a week"),
            (["--plan", "--minutes", "5"], "--plan with --minutes needs --count"),
            (["--uploads", "17"], "--uploads must be 0-16"),
            (["--upload-mib", "0"], "--upload-mib must be 1-1024"),
            (["--sessions", "17"], "--sessions must be 0-16"),
            (["--session-requests", "0"], "--session-requests must be 1-1000"),
            (["--pipelined", "17"], "--pipelined must be 0-16"),
            (["--rate", "2X"], "--rate must be a byte rate"),
            (["--url", "http://10.0.0.1/a", "--url", "http://10.0.0.2/b"], "--pipelined needs every --url on one"),
            (["--url", "http://example.org/a"], "--pipelined needs every --url on one"),
            (["--backend", "10.77.0.1:9000"], "--backend and --proxy go together"),
            (["--proxy", "http://10.77.0.2:8081/proxy-once"], "--backend and --proxy go together"),
            (["--backend", "backend:9000", "--proxy", "http://10.77.0.2/p"], "--backend must be ADDRESS:PORT"),
            (["--backend", "10.77.0.1:9000", "--proxy", "10.77.0.2/p"], "--proxy must be an http:// or https://"),
        ] {
            XCTAssertThrowsError(try Chaos.parse(["--name", "demo"] + arguments), "\(arguments)") { error in
                XCTAssertTrue(Chaos.message(for: error).contains(reason), "\(arguments): \(Chaos.message(for: error))")
            }
        }
    }

    func testRatesAreReadAsCurlReadsThem() {
        XCTAssertEqual(Chaos.bytesPerSecond("2M"), 2 << 20)
        XCTAssertEqual(Chaos.bytesPerSecond("500k"), 500 << 10)
        XCTAssertEqual(Chaos.bytesPerSecond("1048576"), 1_048_576)
        XCTAssertEqual(Chaos.bytesPerSecond("1G"), 1 << 30)
        for bad in ["", "M", "0", "-2M", "2.5M", "2MB"] { XCTAssertNil(Chaos.bytesPerSecond(bad), bad) }
        XCTAssertNoThrow(
            try Chaos.parse(["--name", "demo", "--url", "http://10.0.0.1/a", "--url", "http://10.0.0.1:80/b"]),
            "one server: pipelined sessions can ask it")
        XCTAssertNoThrow(
            try Chaos.parse(["--name", "demo", "--pipelined", "0", "--url", "https://example.org/a"]),
            "no pipelined session: any URL")
    }

    /// A pipelined session's client: its URLs, and every request written at once, the last one
    /// closing the connection.
    func testAPipelinedSessionAsksForEveryURLAtOnce() throws {
        let targets = try ["http://10.77.0.2/bytes/5", "http://10.77.0.2:8081/big.bin?x=1"].map {
            try XCTUnwrap(Pipeline.Target($0))
        }
        XCTAssertEqual(targets.map(\.port), [80, 8081])
        XCTAssertEqual(targets.map(\.path), ["/bytes/5", "/big.bin?x=1"])
        XCTAssertEqual(Pipeline.Target("http://10.77.0.2")?.path, "/")
        for bad in ["https://10.77.0.2/", "http://host.example/", "http://10.77.0.2:99999/", "ftp://10.0.0.1/"] {
            XCTAssertNil(Pipeline.Target(bad), bad)
        }
        XCTAssertEqual(
            String(decoding: Pipeline.requests(targets), as: UTF8.self),
            "GET /bytes/5 HTTP/1.1\r\nHost: 10.77.0.2:80\r\n\r\n"
                + "GET /big.bin?x=1 HTTP/1.1\r\nHost: 10.77.0.2:8081\r\nConnection: close\r\n\r\n")
        XCTAssertThrowsError(
            try Pipeline.parse(["--rate", "10", "--output", "/tmp/x", "http://10.0.0.1/a", "http://10.0.0.2/b"]))
    }

    /// A daemon an earlier daemon-kill round started is the campaign's child: once killed it is
    /// a zombie until reaped, which `kill(pid, 0)` alone takes for alive.
    func testAKilledChildIsGoneOnceReaped() throws {
        let pid = try DetachedProcess.spawn(["/bin/sleep", "30"], logPath: "/dev/null")
        XCTAssertFalse(Chaos.waitUntilGone(pid, seconds: 0.2), "running")
        kill(pid, SIGKILL)
        XCTAssertTrue(Chaos.waitUntilGone(pid, seconds: 5))
        XCTAssertNotEqual(kill(pid, 0), 0, "reaped, not a zombie")
    }

    func testTheProgressLineSaysTheRoundTheFaultAndTheTime() {
        XCTAssertEqual(
            Progress.line(round: 3, total: 20, fault: "kernel-panic", elapsed: 3725.4),
            "chaos: round 3 of 20 (kernel-panic) under way, 1:02:05 elapsed")
        XCTAssertEqual(
            Progress.line(round: 7, total: nil, fault: "upgrade", elapsed: 59),
            "chaos: round 7 (upgrade) under way, 0:00:59 elapsed")
    }

    /// A keep-alive session passes only when every answer is byte-exact and all came on one
    /// connection: curl's quiet reconnection after a reset between requests is a reset.
    func testASessionIsOKOnlyOnOneConnectionWithEveryAnswerRight() {
        XCTAssertEqual(Session.outcome(answers: [.ok, .ok, .ok], connects: [1, 0, 0]), .ok)
        XCTAssertEqual(Session.outcome(answers: [.ok, .ok, .ok], connects: [1, 1, 0]), .reset)
        XCTAssertEqual(Session.outcome(answers: [.ok, .wrong, .ok], connects: [1, 0, 0]), .wrong)
        XCTAssertEqual(Session.outcome(answers: [.ok, .cut, .wrong], connects: [1, 0, 0]), .wrong)
        XCTAssertEqual(Session.outcome(answers: [.ok, .failed], connects: [1, 0]), .failed)
        XCTAssertEqual(Session.outcome(answers: [.ok, .ok], connects: [1]), .failed, "curl reported one transfer")
    }

    /// Every upload of a campaign sends the same seeded body, whose digest the answers are
    /// checked against; another seed, another body.
    func testTheUploadBodyFollowsTheSeed() throws {
        let one = try UploadBody(mebibytes: 1, seed: 5)
        let again = try UploadBody(mebibytes: 1, seed: 5)
        let other = try UploadBody(mebibytes: 1, seed: 6)
        defer { [one, again, other].forEach { $0.remove() } }
        XCTAssertEqual(one.sha256, again.sha256)
        XCTAssertNotEqual(one.sha256, other.sha256)
        XCTAssertEqual(try Digest(file: one.file).length, 1 << 20)
        XCTAssertEqual(one.sha256.count, 64)
    }

    /// A round's line names the transfers that were not ok, so a failed round says what to
    /// look at; a clean round's line says nothing more.
    func testARoundLineNamesWhatWasNotOK() {
        var round = RoundResult(
            round: 63, fault: "service-crash", outcomes: [.ok, .cut, .ok], recovery: nil, protectedAfterSeconds: 1,
            note: nil)
        XCTAssertFalse(round.line.contains("not ok"))
        round.notOK = ["cut: download of http://10.77.0.2/bytes/16000000?seed=1"]
        XCTAssertTrue(round.line.contains("cut 1"), round.line)
        XCTAssertTrue(
            round.line.hasSuffix("  not ok: cut: download of http://10.77.0.2/bytes/16000000?seed=1"), round.line)
    }
}
