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
        XCTAssertNil(detector.observe(3, atMillis: 0))
        XCTAssertNil(detector.observe(3, atMillis: 900), "still, but inside the grace period")
        XCTAssertEqual(detector.observe(3, atMillis: 1000), 1000, "judged as soon as the grace ends")
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
