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
        ] {
            XCTAssertThrowsError(try Chaos.parse(["--name", "demo"] + arguments), "\(arguments)") { error in
                XCTAssertTrue(Chaos.message(for: error).contains(reason), "\(arguments): \(Chaos.message(for: error))")
            }
        }
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
}
