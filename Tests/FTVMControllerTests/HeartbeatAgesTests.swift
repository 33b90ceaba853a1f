import XCTest

@testable import FTVMController

/// The heartbeat age the status reports: time since the counter last changed, on the host's
/// clock, per guest.
final class HeartbeatAgesTests: XCTestCase {
    private let ms: UInt64 = 1_000_000

    func testAgeCountsFromTheLastChange() {
        let ages = HeartbeatAges()
        XCTAssertNil(ages.ageMillis(of: "g1", atNanos: 0), "never sampled")
        ages.observe([("g1", 5), ("g2", 9)], atNanos: 100 * ms)
        ages.observe([("g1", 6), ("g2", 9)], atNanos: 120 * ms)
        ages.observe([("g1", 6), ("g2", 9)], atNanos: 150 * ms)
        // g1 last changed at 120 ms, g2 (still, like a paused backup) was first seen at 100 ms.
        XCTAssertEqual(ages.ageMillis(of: "g1", atNanos: 170 * ms), 50)
        XCTAssertEqual(ages.ageMillis(of: "g2", atNanos: 170 * ms), 70)
        // A wrapped or reset counter is a change like any other.
        ages.observe([("g1", 0), ("g2", 9)], atNanos: 200 * ms)
        XCTAssertEqual(ages.ageMillis(of: "g1", atNanos: 200 * ms), 0)
    }

    func testGuestsNoLongerListedAreForgotten() {
        let ages = HeartbeatAges()
        ages.observe([("g1", 1), ("g2", 1)], atNanos: 10 * ms)
        ages.observe([("g2", 1)], atNanos: 20 * ms)
        XCTAssertNil(ages.ageMillis(of: "g1", atNanos: 30 * ms))
        XCTAssertEqual(ages.ageMillis(of: "g2", atNanos: 30 * ms), 20)
    }

    func testASampleFromTheFutureIsAgeZero() {
        let ages = HeartbeatAges()
        ages.observe([("g1", 1)], atNanos: 50 * ms)
        XCTAssertEqual(ages.ageMillis(of: "g1", atNanos: 40 * ms), 0)
    }
}
