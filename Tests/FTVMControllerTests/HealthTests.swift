import FTVMChannel
import Foundation
import XCTest

@testable import FTVMController

/// The failure detector with a fake clock: no waiting, exact boundaries.
final class HeartbeatDetectorTests: XCTestCase {
    private func detector(tick: Int = 100, missed: Int = 5, grace: Int = 1000) -> HeartbeatDetector {
        var policy = HealthPolicy()
        policy.tickMillis = tick
        policy.missedTicks = missed
        policy.graceMillis = grace
        var detector = HeartbeatDetector(policy: policy)
        detector.reset(atMillis: 0)
        return detector
    }

    func testMovingCounterNeverFails() {
        var detector = detector()
        for step in 0..<10_000 {
            XCTAssertNil(
                detector.observe(UInt64(step / 3), atMillis: 2000 + step * 20),
                "a counter that moves every 60 ms is alive")
        }
    }

    func testStillCounterFailsExactlyAtTheLimit() {
        var detector = detector(grace: 0)
        XCTAssertNil(detector.observe(7, atMillis: 1000))
        XCTAssertNil(detector.observe(7, atMillis: 1499), "4.99 ticks still is not yet a failure")
        XCTAssertEqual(detector.observe(7, atMillis: 1500), 500, "5 ticks still is")
    }

    func testGracePeriodAfterAResume() {
        var detector = detector(grace: 1000)
        for now in stride(from: 0, to: 1000, by: 20) {
            XCTAssertNil(detector.observe(3, atMillis: now), "still, but inside the grace period")
        }
        XCTAssertEqual(detector.observe(3, atMillis: 1000), 1000, "judged as soon as the grace ends")
    }

    /// The daemon itself did not sample for longer than the stall limit: that gap is nobody's
    /// time, and the samples after it judge. A guest still hung then fails one stall limit
    /// later; one that beats again was never failed (before, a 1.8 s gap while the host removed
    /// a failed guest failed over a healthy primary whose QEMU could not run either).
    func testAGapInTheSamplesIsNotChargedToTheGuest() {
        var detector = detector(grace: 0)
        XCTAssertNil(detector.observe(7, atMillis: 1000))
        XCTAssertNil(detector.observe(7, atMillis: 2832, starvedMillis: 239), "1832 ms without a sample")
        XCTAssertNil(detector.observe(8, atMillis: 2852), "it beats again")
        XCTAssertNil(detector.observe(8, atMillis: 3000))
        XCTAssertNil(detector.observe(8, atMillis: 4900), "another gap")
        for now in stride(from: 4920, to: 5260, by: 20) {
            XCTAssertNil(detector.observe(8, atMillis: now), "\(now)")
        }
        // 148 ms sampled before the gap and 360 after: still hung.
        XCTAssertEqual(detector.observe(8, atMillis: 5260), 2408, "still since the beat at 2852")
    }

    func testResetForgetsTheOldPrimary() {
        var detector = detector(grace: 0)
        XCTAssertNil(detector.observe(5, atMillis: 0))
        detector.reset(atMillis: 400)
        XCTAssertNil(detector.observe(5, atMillis: 800), "a new primary gets a new baseline")
        XCTAssertNotNil(detector.observe(5, atMillis: 1300))
    }

    func testWrappingCounterIsAChange() {
        var detector = detector(grace: 0)
        XCTAssertNil(detector.observe(.max, atMillis: 0))
        XCTAssertNil(detector.observe(0, atMillis: 600))
    }
}

/// The detector fed with how long the guest's vCPU could not run: the stall limit counts only
/// the time the guest could have beaten in, up to the wall-clock outer bound.
final class StarvedHeartbeatTests: XCTestCase {
    /// One scenario: a counter sampled every 20 ms from 0 ms, moving at `beats`; `starved(t)` is
    /// what the daemon reports for the interval that ends at `t`.
    private struct Case: Sendable {
        var name: String
        var beats: Set<Int> = []
        var starved: @Sendable (Int) -> Int
        var failsAt: Int?
        var forgiven: Int
    }

    /// Stopped during `spell`: each 20 ms interval that ends in it is starved whole.
    private static func stopped(_ spell: ClosedRange<Int>) -> @Sendable (Int) -> Int {
        { spell.contains($0) ? 20 : 0 }
    }

    private static let cases: [Case] = [
        Case(
            name: "hung, its vCPU running or halted: as with a wall clock", starved: { _ in 0 }, failsAt: 500,
            forgiven: 0),
        Case(name: "hung, waiting for a host CPU half the time", starved: { _ in 10 }, failsAt: 1000, forgiven: 1),
        Case(name: "hung, starved for good: the outer bound", starved: { _ in 20 }, failsAt: 10_000, forgiven: 1),
        Case(
            name: "a starvation reported longer than its interval counts as the interval", starved: { _ in 5000 },
            failsAt: 10_000, forgiven: 1),
        Case(
            name: "stopped 1.5 s, then beats", beats: Set(stride(from: 1520, through: 12_000, by: 40)),
            starved: stopped(20...1500), failsAt: nil, forgiven: 1),
        Case(name: "stopped 1.5 s, then hung", starved: stopped(20...1500), failsAt: 2000, forgiven: 1),
        Case(
            name: "stopped 9.6 s, then hung: the outer bound comes first", starved: stopped(20...9600), failsAt: 10_000,
            forgiven: 1),
        Case(
            name: "stopped twice, one beat after each, then hung", beats: [1000, 2200],
            starved: { (20...800).contains($0) || (1020...2000).contains($0) ? 20 : 0 }, failsAt: 2700, forgiven: 2),
    ]

    private func run(
        _ scenario: Case, policy: HealthPolicy = StarvedHeartbeatTests.policy(), until end: Int = 12_000
    ) -> (Int?, Int) {
        var detector = HeartbeatDetector(policy: policy)
        detector.reset(atMillis: 0)
        var counter: UInt64 = 0
        for now in stride(from: 0, through: end, by: 20) {
            if scenario.beats.contains(now) { counter += 1 }
            if detector.observe(counter, atMillis: now, starvedMillis: now == 0 ? 0 : scenario.starved(now)) != nil {
                return (now, detector.stallsForgiven)
            }
        }
        return (nil, detector.stallsForgiven)
    }

    private static func policy(grace: Int = 0, missed: Int = 5) -> HealthPolicy {
        var policy = HealthPolicy()
        policy.graceMillis = grace
        policy.missedTicks = missed
        return policy
    }

    func testScenarios() {
        for scenario in Self.cases {
            let (failedAt, forgiven) = run(scenario)
            XCTAssertEqual(failedAt, scenario.failsAt, scenario.name)
            XCTAssertEqual(forgiven, scenario.forgiven, "stalls forgiven: \(scenario.name)")
        }
    }

    /// The grace after a resume is wall time, as before: judged when it ends, in the time the
    /// guest could run since the reset.
    func testGraceIsUnchanged() {
        let hung = Case(name: "hung", starved: { _ in 0 }, forgiven: 0)
        XCTAssertEqual(run(hung, policy: Self.policy(grace: 1000)).0, 1000)
        let stoppedThenHung = Case(name: "stopped 800 ms, then hung", starved: Self.stopped(20...800), forgiven: 0)
        XCTAssertEqual(run(stoppedThenHung, policy: Self.policy(grace: 1000)).0, 1300)
    }

    /// A stall limit longer than the default outer bound is not cut short by it.
    func testOuterBoundIsNeverBelowTheStallLimit() {
        let policy = Self.policy(missed: 200)
        XCTAssertEqual(policy.wallStallLimitMillis, 20_000)
        XCTAssertEqual(
            run(Case(name: "hung", starved: { _ in 0 }, forgiven: 0), policy: policy, until: 30_000).0, 20_000)
    }

    /// The count of forgiven stalls survives a new primary (it feeds a Prometheus counter).
    func testForgivenStallsSurviveAReset() {
        var detector = HeartbeatDetector(policy: Self.policy())
        detector.reset(atMillis: 0)
        for now in stride(from: 20, through: 600, by: 20) {
            XCTAssertNil(detector.observe(1, atMillis: now, starvedMillis: 20))
        }
        XCTAssertEqual(detector.stallsForgiven, 1)
        detector.reset(atMillis: 600)
        XCTAssertEqual(detector.stallsForgiven, 1)
    }
}

/// The data path judged by the time the primary's QEMU could run: a client segment unanswered
/// while QEMU was stopped or starved is not a dead NIC; one unanswered while it ran is.
final class DataPathClockTests: XCTestCase {
    private let ms: UInt64 = 1_000_000
    private let sent: UInt64 = 10_000_000_000

    /// Turns of `step` ms from `sent` until `until` ms later, each starved `starved` ms; the
    /// first wall time (ms) a failure is returned at, if any.
    private func run(
        _ clock: inout DataPathClock, from: Int = 0, until: Int, step: Int = 20, starved: (Int) -> Int
    ) -> Int? {
        for at in stride(from: from + step, through: until, by: step) {
            if let failed = clock.observe(
                unansweredSince: sent, now: sent + UInt64(at) * ms, starvedMillis: starved(at))
            {
                return failed
            }
        }
        return nil
    }

    func testAGuestThatRunsAndDoesNotAnswerFailsAfterTheLimit() {
        var clock = DataPathClock(policy: HealthPolicy())
        let failed = run(&clock, until: 5000) { _ in 0 }
        XCTAssertEqual(failed, 3000)
        XCTAssertEqual(clock.stallsForgiven, 0)
    }

    func testAStoppedGuestIsForgivenUntilItRunsOrTheWallBound() {
        var stopped = DataPathClock(policy: HealthPolicy())
        // Stopped for 4 s (every turn starved whole), then answering: no failure, one forgiven.
        XCTAssertNil(run(&stopped, until: 4000) { _ in 20 })
        XCTAssertEqual(stopped.stallsForgiven, 1)
        XCTAssertNil(stopped.observe(unansweredSince: nil, now: sent + 4020 * ms, starvedMillis: 0), "answered")
        var never = DataPathClock(policy: HealthPolicy())
        XCTAssertEqual(run(&never, until: 20_000) { _ in 20 }, 10_000, "a QEMU that never runs: the wall bound")
    }

    func testAThrottledGuestCountsOnlyTheTimeItRan() {
        var clock = DataPathClock(policy: HealthPolicy())
        // 5 % of a CPU: could run 1 ms in each 20 ms turn, 50 ms a second.
        XCTAssertNil(run(&clock, until: 9000) { _ in 19 })
        XCTAssertEqual(clock.stallsForgiven, 1, "forgiven once for the spell")
    }

    /// A new unanswered segment after an answer is a new spell: the last one's starvation does
    /// not carry over.
    func testANewSpellStartsAfresh() {
        var clock = DataPathClock(policy: HealthPolicy())
        XCTAssertNil(run(&clock, until: 2000) { _ in 20 })
        XCTAssertNil(clock.observe(unansweredSince: nil, now: sent + 2020 * ms, starvedMillis: 0))
        let next = sent + 3000 * ms
        var failedAt: Int?
        for at in stride(from: 20, through: 5000, by: 20) where failedAt == nil {
            failedAt = clock.observe(unansweredSince: next, now: next + UInt64(at) * ms, starvedMillis: 0)
        }
        XCTAssertEqual(failedAt, 3000)
    }
}

/// What the health loop makes of libvirt events and agent reports.
final class FailureCauseTests: XCTestCase {
    func testEventsForOtherDomainsAreIgnored() {
        XCTAssertNil(PairDaemon.cause(from: [("other", .crashed(.panicked))], for: "p"))
        XCTAssertEqual(PairDaemon.cause(from: [("p", .crashed(.panicked))], for: "p"), .kernelPanic)
        XCTAssertEqual(PairDaemon.cause(from: [("p", .stopped(.failed))], for: "p"), .qemuDied(reason: "failed"))
        XCTAssertNil(PairDaemon.cause(from: [("p", .suspended(.paused)), ("p", .resumed(.unpaused))], for: "p"))
    }

    func testAgentReports() throws {
        let path = NSTemporaryDirectory() + "ftvm-cause-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let channel = try Channel.open(path: path, create: true)
        channel.declareService(0, name: "demo", port: 80)
        channel.serviceStarted(0, pid: 10, isRestart: false)
        channel.agentState = .ready
        var seen: [String: UInt32] = [:]
        XCTAssertNil(PairDaemon.cause(from: channel, restartsSeen: &seen))
        channel.serviceResponsive(0, false)
        XCTAssertEqual(PairDaemon.cause(from: channel, restartsSeen: &seen), .serviceHung(name: "demo"))
        channel.serviceExited(0, status: -9)
        XCTAssertEqual(PairDaemon.cause(from: channel, restartsSeen: &seen), .serviceFailed(name: "demo", exit: -9))
        XCTAssertEqual(
            FailureCause.serviceFailed(name: "demo", exit: -9).description, "service demo killed by signal 9")
        channel.agentState = .failed
        XCTAssertEqual(PairDaemon.cause(from: channel, restartsSeen: &seen), .agentFailed)
    }

    /// A crash the agent restarted from before the loop looked (it was held up longer than the
    /// agent's 500 ms restart delay) still shows: the service's restart count moved.
    func testAServiceRestartedBetweenTwoLooksIsACrash() throws {
        let path = NSTemporaryDirectory() + "ftvm-cause-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let channel = try Channel.open(path: path, create: true)
        channel.declareService(0, name: "demo", port: 80)
        channel.serviceStarted(0, pid: 10, isRestart: false)
        channel.serviceExited(0, status: -9)
        channel.serviceStarted(0, pid: 11, isRestart: true)  // a crash during boot, before the first look
        channel.agentState = .ready
        var seen: [String: UInt32] = [:]
        XCTAssertNil(PairDaemon.cause(from: channel, restartsSeen: &seen), "counted from the first look")
        channel.serviceExited(0, status: -9)
        channel.serviceStarted(0, pid: 12, isRestart: true)
        XCTAssertEqual(PairDaemon.cause(from: channel, restartsSeen: &seen), .serviceFailed(name: "demo", exit: -9))
    }
}

/// Bad user input is refused with a message that says what to do.
final class ConfigTests: XCTestCase {
    func testPairNames() {
        for good in ["demo", "a", "a-1", "abcdefghij"] { XCTAssertNoThrow(try PairConfig(name: good)) }
        for bad in ["", "Demo", "1abc", "abcdefghijk", "a_b", "a b", "ä"] {
            XCTAssertThrowsError(try PairConfig(name: bad)) { error in
                XCTAssertTrue("\(error)".contains("invalid pair name"), "\(error)")
            }
        }
    }

    func testDerivedNamesFitInterfaceNames() throws {
        let config = try PairConfig(name: "abcdefghij")
        XCTAssertLessThanOrEqual(config.tapName.utf8.count, 15, "IFNAMSIZ")
        XCTAssertEqual(config.domainName(generation: 3), "ftvm-abcdefghij-3")
        XCTAssertEqual(config.channelPath(generation: 3), "/dev/shm/ftvm-abcdefghij-3-chan")
    }

    func testMissingImageSaysHowToBuildOne() throws {
        let directory = NSTemporaryDirectory() + "ftvm-image-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        XCTAssertThrowsError(try GuestImage(directory: directory)) { error in
            XCTAssertEqual(error as? ConfigError, .missingImage(directory: directory, file: "vmlinuz"))
            XCTAssertTrue("\(error)".contains("images/build.sh"))
        }
        for file in ["vmlinuz", "initrd.img"] {
            XCTAssertTrue(
                FileManager.default.createFile(
                    atPath: "\(directory)/\(file)", contents: Data([1]), attributes: [.posixPermissions: 0o644]))
        }
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: "\(directory)/image.env", contents: Data("FTVM_IMAGE_VERSION=\"3.1\"\n".utf8),
                attributes: [.posixPermissions: 0o600]))
        XCTAssertThrowsError(try GuestImage(directory: directory)) { error in
            XCTAssertEqual(error as? ConfigError, .unreadableImage(path: "\(directory)/image.env"))
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: "\(directory)/image.env")
        XCTAssertEqual(try GuestImage(directory: directory).version, "3.1")
    }
}

/// The agent's "service hung" reports against the primary's starvation, with a fake clock.
final class StarvedProbeGateTests: XCTestCase {
    /// A gate fed `starvedShare` of every 10 ms sample from `from` to `to` (ms).
    private func feed(_ gate: inout StarvedProbeGate, starvedShare: Double, from: Int, to: Int) {
        for now in stride(from: from + 10, through: to, by: 10) {
            gate.note(starvedMillis: Int(10 * starvedShare), atMillis: now)
        }
    }

    private func gate() -> StarvedProbeGate {
        var gate = StarvedProbeGate(policy: HealthPolicy())
        gate.reset(atMillis: 0)
        return gate
    }

    func testAReportFromAGuestThatCouldRunStandsAtOnce() {
        var gate = gate()
        feed(&gate, starvedShare: 0, from: 0, to: 5000)
        XCTAssertTrue(gate.stands(hung: true, atMillis: 5000))
        XCTAssertEqual(gate.reportsHeld, 0)
        feed(&gate, starvedShare: 0.2, from: 5000, to: 9000)
        XCTAssertTrue(gate.stands(hung: true, atMillis: 9000), "a fifth lost is not starvation")
    }

    func testAReportFromAStarvedGuestIsHeldUpToTheWallBound() {
        var gate = gate()
        feed(&gate, starvedShare: 0.5, from: 0, to: 5000)
        XCTAssertFalse(gate.stands(hung: true, atMillis: 5000))
        XCTAssertEqual(gate.reportsHeld, 1)
        feed(&gate, starvedShare: 0.5, from: 5000, to: 14_990)
        XCTAssertFalse(gate.stands(hung: true, atMillis: 14_990), "still starved, 9.99 s into the report")
        XCTAssertEqual(gate.reportsHeld, 1, "one spell, counted once")
        feed(&gate, starvedShare: 0.5, from: 14_990, to: 15_000)
        XCTAssertTrue(gate.stands(hung: true, atMillis: 15_000), "a QEMU that never gets to run serves nobody")
    }

    func testAHeldReportStandsOnceTheGuestCouldRunForTheSpan() {
        var gate = gate()
        feed(&gate, starvedShare: 1, from: 0, to: 3000)
        XCTAssertFalse(gate.stands(hung: true, atMillis: 3000))
        feed(&gate, starvedShare: 0, from: 3000, to: 5000)
        XCTAssertFalse(gate.stands(hung: true, atMillis: 5000), "a third of the span still starved")
        feed(&gate, starvedShare: 0, from: 5000, to: 5800)
        XCTAssertTrue(gate.stands(hung: true, atMillis: 5800), "the service did not answer a guest that could run")
    }

    func testAnAnswerEndsTheSpellAndAResetKeepsTheCount() {
        var gate = gate()
        feed(&gate, starvedShare: 0.6, from: 0, to: 3000)
        XCTAssertFalse(gate.stands(hung: true, atMillis: 3000))
        XCTAssertFalse(gate.stands(hung: false, atMillis: 3100))
        feed(&gate, starvedShare: 0.6, from: 3000, to: 12_000)
        XCTAssertFalse(gate.stands(hung: true, atMillis: 12_000), "a new spell: its wall bound starts again")
        XCTAssertEqual(gate.reportsHeld, 2)
        gate.reset(atMillis: 12_000)
        XCTAssertEqual(gate.reportsHeld, 2)
        XCTAssertEqual(gate.starvedShare, 0, "a new primary starts with a clean span")
        feed(&gate, starvedShare: 0, from: 12_000, to: 12_500)
        XCTAssertTrue(gate.stands(hung: true, atMillis: 12_500))
    }

    func testALongGapBetweenSamplesStartsTheSpanOver() {
        var gate = gate()
        feed(&gate, starvedShare: 1, from: 0, to: 3000)
        gate.note(starvedMillis: 0, atMillis: 60_000)
        XCTAssertEqual(gate.starvedShare, 0, accuracy: 0.001)
    }
}
