import Foundation
import Glibc
import Synchronization
import XCTest

@testable import FTVMSystem

/// When the relay thread may run under SCHED_FIFO: only with a priority asked for and the
/// kernel's real-time throttling on to bound it.
final class RealtimeSchedulingTests: XCTestCase {
    func testFIFOWhenThrottlingBoundsIt() {
        XCTAssertEqual(RealtimeScheduling.decide(priority: 1, rtRuntimeSetting: "950000\n"), .fifo(priority: 1))
        XCTAssertEqual(RealtimeScheduling.decide(priority: 99, rtRuntimeSetting: "1"), .fifo(priority: 99))
        XCTAssertEqual(RealtimeScheduling.fifo(priority: 1).description, "SCHED_FIFO 1")
    }

    func testNormalWhenNotAskedOrNotBounded() {
        func reason(_ priority: Int32, _ setting: String?) -> String? {
            guard case .normal(let reason) = RealtimeScheduling.decide(priority: priority, rtRuntimeSetting: setting)
            else { return nil }
            return reason
        }
        XCTAssertEqual(reason(0, "950000\n"), "network.relay-priority is 0")
        XCTAssertTrue(reason(1, "-1\n")?.contains("throttling is off") == true, "unbounded: a runaway relay")
        XCTAssertTrue(reason(1, "0\n")?.contains("no real-time thread may run") == true)
        XCTAssertTrue(reason(1, nil)?.contains("cannot read") == true)
        XCTAssertTrue(reason(1, "lots")?.contains("cannot read") == true)
        XCTAssertTrue(reason(1, "")?.contains("cannot read") == true)
    }

    /// On a thread of its own (the test runner's must stay as it is): what it asks for is what
    /// the kernel then reports for it, and a refused request says why.
    func testAppliedToAThread() {
        let result = Mutex<(RealtimeScheduling, Int32)?>(nil)
        let thread = Thread {
            let decision = RealtimeScheduling.applyToCurrentThread(priority: 1)
            result.withLock { $0 = (decision, sched_getscheduler(0)) }
        }
        thread.start()
        let deadline = Date().addingTimeInterval(10)
        while result.withLock({ $0 }) == nil, Date() < deadline { usleep(1000) }
        guard let (decision, policy) = result.withLock({ $0 }) else { return XCTFail("the thread did not report") }
        switch decision {
        case .fifo(let priority):
            XCTAssertEqual(priority, 1)
            XCTAssertEqual(policy, SCHED_FIFO)
        case .normal(let reason):
            XCTAssertEqual(policy, SCHED_OTHER, reason)
            XCTAssertFalse(reason.isEmpty)
        }
    }
}
