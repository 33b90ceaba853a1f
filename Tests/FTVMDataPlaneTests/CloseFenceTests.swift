import XCTest

@testable import FTVMDataPlane

/// When the close fence lets a guest's FIN or RST go (`Relay.agentVouches`): once the guest's
/// agent beat three times after it, over three of its ticks of wall time, with every service
/// running and none restarted.
final class CloseFenceTests: XCTestCase {
    private let ms: UInt64 = 1_000_000

    /// The agent's tag: its heartbeat in the low 48 bits, its services' restarts in the high 16.
    private func mark(beat: UInt64, restarts: UInt64 = 2, allRunning: Bool = true) -> Relay.AgentMark {
        Relay.AgentMark(tag: beat | restarts << 48, allRunning: allRunning, tickMillis: 20)
    }

    func testThreeBeatsOverThreeTicksVouch() {
        let closed = mark(beat: 40).tag
        XCTAssertFalse(Relay.agentVouches(closedAt: closed, now: mark(beat: 42), heldNanos: 80 * ms), "two beats")
        XCTAssertTrue(Relay.agentVouches(closedAt: closed, now: mark(beat: 43), heldNanos: 60 * ms))
        XCTAssertTrue(Relay.agentVouches(closedAt: closed, now: mark(beat: 50), heldNanos: 180 * ms))
    }

    /// A late agent catches up on its ticks back to back: three beats in a burst are one look
    /// at the services, not three, so they do not vouch before three ticks of wall time.
    func testABurstOfBeatsDoesNotVouchBeforeThreeTicks() {
        let closed = mark(beat: 40).tag
        XCTAssertFalse(Relay.agentVouches(closedAt: closed, now: mark(beat: 43), heldNanos: 5 * ms))
        XCTAssertFalse(Relay.agentVouches(closedAt: closed, now: mark(beat: 45), heldNanos: 59 * ms))
    }

    func testADeadOrRestartedServiceNeverVouches() {
        let closed = mark(beat: 40).tag
        XCTAssertFalse(
            Relay.agentVouches(closedAt: closed, now: mark(beat: 50, allRunning: false), heldNanos: 2000 * ms))
        XCTAssertFalse(Relay.agentVouches(closedAt: closed, now: mark(beat: 50, restarts: 3), heldNanos: 2000 * ms))
    }
}
