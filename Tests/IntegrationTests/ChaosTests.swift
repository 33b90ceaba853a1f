import Foundation
import XCTest

/// `ftvm chaos` against a real pair: a campaign of every kind of fault passes with every
/// download byte-exact, its fault sequence is the seed's, and the verdict fails when a resource
/// cannot be replayed (the demo's `/random`, different bytes on every request).
final class ChaosTests: PairTestCase {
    override var pair: String { "itch" }

    func testACampaignOfEveryKindOfFaultPassesAndFollowsItsSeed() throws {
        try Harness.ftvm(["up", "--name", pair])
        let plan = try Harness.ftvm(["chaos", "--name", pair, "--plan", "--seed", "19", "--count", "6"]).stdout
        let planned = plan.split(separator: "\n").map { $0.split(separator: " ")[1] }.map(String.init)
        XCTAssertEqual(planned.count, 6, plan)
        let again = try Harness.ftvm(["chaos", "--name", pair, "--plan", "--seed", "19", "--count", "6"]).stdout
        XCTAssertEqual(again, plan, "a seed repeats its fault sequence")

        let campaign = try Harness.run([
            Harness.ftvm, "chaos", "--name", pair, "--seed", "19", "--count", "6", "--parallel", "3", "--json",
        ])
        print("chaos-campaign: \(campaign.combined)")
        XCTAssertEqual(campaign.status, 0, campaign.combined)
        let objects = try Harness.jsonLines(campaign.stdout)
        XCTAssertEqual(objects.count, 7, "one object per fault, then the summary: \(campaign.stdout)")
        XCTAssertEqual(objects.prefix(6).compactMap { $0["fault"] as? String }, planned, "the seed's faults, in order")
        for round in objects.prefix(6) {
            // Three downloads, one upload to the demo's /sha256 (the default there), one
            // keep-alive session of six requests on one connection, and one pipelined session of
            // six requests written at once.
            XCTAssertEqual(
                round["ok"] as? Int, 6,
                "every download and answer byte-exact, the upload's digest right, the sessions on one connection: \(round)"
            )
        }
        let summary = try XCTUnwrap(objects.last)
        XCTAssertEqual(summary["passed"] as? Bool, true, "\(summary)")
        XCTAssertEqual(summary["wrong"] as? Int, 0, "\(summary)")
        XCTAssertEqual(summary["connections"] as? Int, 36, "\(summary)")
    }

    /// Proxied requests through the image's nginx, one back-end connection per request
    /// (`/proxy-once`) and pooled (`/proxy`), to chaos's own counting back end: every request
    /// reaches it exactly once across a kernel panic and a QEMU kill.
    func testEveryProxiedRequestReachesTheBackEndOnce() throws {
        try Harness.ftvm(["up", "--name", pair])
        let campaign = try Harness.run([
            Harness.ftvm, "chaos", "--name", pair, "--seed", "3", "--count", "2", "--faults", "kernel-panic,qemu-kill",
            "--parallel", "1", "--uploads", "0", "--sessions", "0", "--pipelined", "0", "--json",
            "--backend", "10.77.0.1:9000", "--proxy", "http://\(Harness.serviceAddress):8081/proxy-once",
            "--proxy", "http://\(Harness.serviceAddress):8081/proxy",
        ])
        print("chaos-proxied: \(campaign.combined)")
        XCTAssertEqual(campaign.status, 0, campaign.combined)
        let objects = try Harness.jsonLines(campaign.stdout)
        XCTAssertEqual(objects.count, 3, campaign.stdout)
        for round in objects.prefix(2) {
            // One download, and through each prefix a session of six requests and a download.
            XCTAssertEqual(round["ok"] as? Int, 5, "\(round)")
            XCTAssertEqual(round["proxied"] as? Int, 14, "two prefixes, seven requests each: \(round)")
            XCTAssertEqual(round["backEndTwice"] as? Int, 0, "\(round)")
            XCTAssertEqual(round["backEndNever"] as? Int, 0, "\(round)")
            XCTAssertNotNil(round["detectMillis"], "the fault made a recovery: \(round)")
        }
        XCTAssertEqual(objects.prefix(2).compactMap { $0["fault"] as? String }, ["kernel-panic", "qemu-kill"])
        let summary = try XCTUnwrap(objects.last)
        XCTAssertEqual(summary["passed"] as? Bool, true, "\(summary)")
        XCTAssertEqual(summary["proxied"] as? Int, 28, "\(summary)")
    }

    func testAResourceThatCannotBeReplayedFailsTheVerdict() throws {
        try Harness.ftvm(["up", "--name", pair])
        let campaign = try Harness.run([
            // (--minutes 0.01: the first round starts, none after it; a round's fault comes 1-3 s
            // into it, so it lasts longer than 0.6 s. With 0.05, a round of two resets over in
            // under 3 s was followed by a second.)
            Harness.ftvm, "chaos", "--name", pair, "--minutes", "0.01", "--faults", "kernel-panic", "--parallel", "2",
            "--sessions", "0", "--pipelined", "0", "--url", "http://\(Harness.serviceAddress)/random/16000000",
        ])
        print("chaos-random: \(campaign.combined)")
        XCTAssertNotEqual(campaign.status, 0, "a lost download fails the verdict: \(campaign.combined)")
        XCTAssertTrue(campaign.stdout.contains("answers different bytes each time"), campaign.stdout)
        XCTAssertTrue(campaign.stdout.contains("verdict: FAIL"), campaign.stdout)
        XCTAssertEqual(
            campaign.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("[") }.count, 1, "one round")
        XCTAssertTrue(
            campaign.stdout.contains("reset 2"), "both downloads were reset by the replay: \(campaign.stdout)")
    }
}
