import FTVMAgentKit
import XCTest

/// A service that misses its probes while its processes run or wait to run (a fifth of a CPU or
/// more) is busy, not hung, for up to 10 s;
/// one that misses them while idle is hung after two, as before.
final class BusyGateTests: XCTestCase {
    func testTwoSilentFailuresAreAHang() {
        var gate = BusyGate()
        XCTAssertFalse(gate.failed(cpuMillis: 0, windowMillis: 1500, atMillis: 1000, failuresToReport: 2))
        XCTAssertTrue(
            gate.failed(cpuMillis: 290, windowMillis: 1500, atMillis: 2500, failuresToReport: 2), "under a fifth")
    }

    /// Time waited for the guest's CPU counts as wanted, like time run: a service that ran a
    /// tenth of the window and waited another tenth behind the kernel's network work is busy
    /// (seen: nginx missing probes on a new primary whose vCPU regenerated 20 replays, running
    /// 160-330 ms of each 1.5 s window). A stopped or blocked service neither runs nor waits.
    func testTimeWaitedForACPUCountsAsBusy() {
        var gate = BusyGate()
        XCTAssertFalse(
            gate.failed(cpuMillis: 160, waitedMillis: 900, windowMillis: 1520, atMillis: 1000, failuresToReport: 2))
        XCTAssertFalse(
            gate.failed(cpuMillis: 160, waitedMillis: 900, windowMillis: 1520, atMillis: 2500, failuresToReport: 2),
            "busy, not hung")
        gate.answered()
        XCTAssertFalse(
            gate.failed(cpuMillis: 0, waitedMillis: 0, windowMillis: 1520, atMillis: 4000, failuresToReport: 2))
        XCTAssertTrue(
            gate.failed(cpuMillis: 0, waitedMillis: 0, windowMillis: 1520, atMillis: 5500, failuresToReport: 2))
    }

    func testUnknownCPUCountsAsSilent() {
        var gate = BusyGate()
        XCTAssertFalse(gate.failed(cpuMillis: nil, windowMillis: 1500, atMillis: 1000, failuresToReport: 2))
        XCTAssertTrue(gate.failed(cpuMillis: nil, windowMillis: 1500, atMillis: 2500, failuresToReport: 2))
    }

    func testABusyServiceIsHungOnlyAfterTheLimit() {
        var gate = BusyGate()
        var now = 1000
        // Failing every 1.5 s while running 1.2 s of each window: busy.
        while now < 1000 + BusyGate.busyLimitMillis {
            XCTAssertFalse(
                gate.failed(cpuMillis: 1200, windowMillis: 1500, atMillis: now, failuresToReport: 2), "\(now)")
            now += 1500
        }
        XCTAssertTrue(gate.failed(cpuMillis: 1200, windowMillis: 1500, atMillis: now, failuresToReport: 2))
    }

    func testAnAnswerEndsTheBusySpan() {
        var gate = BusyGate()
        XCTAssertFalse(gate.failed(cpuMillis: 1400, windowMillis: 1500, atMillis: 0, failuresToReport: 2))
        gate.answered()
        XCTAssertFalse(gate.failed(cpuMillis: 1400, windowMillis: 1500, atMillis: 9000, failuresToReport: 2))
        XCTAssertFalse(
            gate.failed(cpuMillis: 1400, windowMillis: 1500, atMillis: 18_000, failuresToReport: 2),
            "9 s busy since the answer: not yet")
    }

    func testBusyThenSilentStartsTheSilentCountAfresh() {
        var gate = BusyGate()
        XCTAssertFalse(gate.failed(cpuMillis: 0, windowMillis: 1500, atMillis: 0, failuresToReport: 2))
        XCTAssertFalse(gate.failed(cpuMillis: 1500, windowMillis: 1500, atMillis: 1500, failuresToReport: 2))
        XCTAssertFalse(gate.failed(cpuMillis: 0, windowMillis: 1500, atMillis: 3000, failuresToReport: 2))
        XCTAssertTrue(gate.failed(cpuMillis: 0, windowMillis: 1500, atMillis: 4500, failuresToReport: 2))
    }

    func testProcStatParsing() throws {
        let line = "4321 (nginx: worker (x)) R 4300 4300 4300 0 -1 4194624 120 0 0 0 250 37 0 0 20 0 1 0 99 0 0"
        let parsed = try XCTUnwrap(ProcessCPU.groupAndTicks(stat: line))
        XCTAssertEqual(parsed.group, 4300)
        XCTAssertEqual(parsed.ticks, 287)
        XCTAssertNil(ProcessCPU.groupAndTicks(stat: "4321 (short) R 1"))
        XCTAssertNil(ProcessCPU.groupAndTicks(stat: "garbage"))
        XCTAssertEqual(ProcessCPU.waitNanos(schedstat: "1227441311 903350190 2541\n"), 903_350_190)
        XCTAssertNil(ProcessCPU.waitNanos(schedstat: "1227441311\n"))
        XCTAssertEqual(
            CPUUsage(ticks: 2, waitNanos: 5) + CPUUsage(ticks: 3, waitNanos: 7), CPUUsage(ticks: 5, waitNanos: 12))
    }
}
