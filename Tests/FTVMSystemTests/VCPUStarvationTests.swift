import Foundation
import XCTest

@testable import FTVMSystem

/// The procfs parsing on sample text, and the meter on a real process that stands in for QEMU.
final class VCPUStarvationTests: XCTestCase {
    func testSchedstat() {
        // on-CPU ns, runqueue-wait ns, timeslices
        XCTAssertEqual(VCPUStarvation.waitNanos(schedstat: "215373062 185841 5\n"), 185_841)
        XCTAssertEqual(VCPUStarvation.waitNanos(schedstat: "0 0 1\n"), 0)
        XCTAssertNil(VCPUStarvation.waitNanos(schedstat: ""))
        XCTAssertNil(VCPUStarvation.waitNanos(schedstat: "215373062 185841"), "truncated")
        XCTAssertNil(VCPUStarvation.waitNanos(schedstat: "1 -2 3"), "not a count")
    }

    func testStateAfterACommandWithSpacesAndParentheses() {
        XCTAssertEqual(VCPUStarvation.state(stat: "4242 (CPU 0/TCG) S 4200 4200 0 0 -1 4194368 3 0"), "S")
        XCTAssertEqual(VCPUStarvation.state(stat: "4242 (CPU 0/TCG) T 4200 4200"), "T")
        XCTAssertEqual(VCPUStarvation.state(stat: "7 (a) b) (c)) t 1 1"), "t", "the last ')' ends the command")
        XCTAssertNil(VCPUStarvation.state(stat: "4242 (CPU 0/TCG"))
        XCTAssertNil(VCPUStarvation.state(stat: "4242 (x) "))
    }

    func testVCPUThreadNames() {
        for name in ["CPU 0/TCG\n", "CPU 1/KVM\n", "ALL CPUs/TCG\n", "CPU 0/TCG"] {
            XCTAssertTrue(VCPUStarvation.isVCPU(comm: name), name)
        }
        for name in ["qemu-system-x86\n", "IO mon_iothread\n", "worker\n", "call_rcu\n", ""] {
            XCTAssertFalse(VCPUStarvation.isVCPU(comm: name), name)
        }
    }

    /// A process that is gone, or has no vCPU thread, is never starved: the detector then judges
    /// in wall time, as before.
    func testNothingToReadIsNotStarved() throws {
        var gone = VCPUStarvation(pid: Int32.max, now: Monotonic.nanos())
        XCTAssertEqual(gone.starvedMillis(now: Monotonic.nanos() + 100_000_000), 0)
        var plain = VCPUStarvation(pid: getpid(), now: Monotonic.nanos())
        XCTAssertEqual(VCPUStarvation.vcpuThreads(of: getpid()), [])
        XCTAssertEqual(plain.starvedMillis(now: Monotonic.nanos() + 100_000_000), 0)
    }

    /// A stand-in QEMU: a process whose thread is named like a vCPU and sleeps (a halted vCPU).
    /// Stopped, its time counts as starved; running again, it does not; killed, nothing is read.
    func testAStoppedVCPUIsStarvedAndAHaltedOneIsNot() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import ctypes, time; ctypes.CDLL(None).prctl(15, b'CPU 0/TCG', 0, 0, 0); print(flush=True); time.sleep(60)",
        ]
        let ready = Pipe()
        process.standardOutput = ready
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        _ = ready.fileHandleForReading.availableData
        let pid = process.processIdentifier
        XCTAssertEqual(VCPUStarvation.vcpuThreads(of: pid), [pid])

        var meter = VCPUStarvation(pid: pid, now: Monotonic.nanos())
        usleep(200_000)
        XCTAssertLessThan(meter.starvedMillis(now: Monotonic.nanos()), 20, "a halted vCPU could run")

        kill(pid, SIGSTOP)
        usleep(50_000)
        _ = meter.starvedMillis(now: Monotonic.nanos())  // the interval the stop began in
        let stoppedFrom = Monotonic.nanos()
        usleep(200_000)
        let stoppedUntil = Monotonic.nanos()
        XCTAssertEqual(
            meter.starvedMillis(now: stoppedUntil), Int((stoppedUntil - stoppedFrom) / 1_000_000), accuracy: 1,
            "a stopped vCPU is starved for the whole interval")

        kill(pid, SIGCONT)
        usleep(20_000)
        _ = meter.starvedMillis(now: Monotonic.nanos())
        usleep(200_000)
        XCTAssertLessThan(meter.starvedMillis(now: Monotonic.nanos()), 20, "running again")

        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(meter.starvedMillis(now: Monotonic.nanos() + 100_000_000), 0, "gone: judged in wall time")
    }

    /// The guest could not run for the least starved vCPU's wait, or for the main loop's (which
    /// fires its timers and holds the lock a TCG vCPU waits on) when that is longer; never more
    /// than the interval, and nothing without a vCPU to read.
    func testTheMainLoopsWaitCountsWhenItIsLonger() {
        typealias Waited = VCPUStarvation.Waited
        let ms: UInt64 = 1_000_000
        let interval = 100 * ms
        XCTAssertEqual(VCPUStarvation.starved(over: interval, vcpus: [Waited(nanos: 10 * ms)], mainLoop: nil), 10 * ms)
        XCTAssertEqual(
            VCPUStarvation.starved(over: interval, vcpus: [Waited(nanos: 10 * ms)], mainLoop: Waited(nanos: 70 * ms)),
            70 * ms, "the main loop waited longer")
        XCTAssertEqual(
            VCPUStarvation.starved(over: interval, vcpus: [Waited(nanos: 40 * ms)], mainLoop: Waited(nanos: 5 * ms)),
            40 * ms, "the vCPU waited longer")
        XCTAssertEqual(
            VCPUStarvation.starved(
                over: interval, vcpus: [Waited(nanos: 90 * ms), Waited(nanos: 20 * ms)], mainLoop: Waited(nanos: 0)),
            20 * ms, "the least starved vCPU counts")
        XCTAssertEqual(
            VCPUStarvation.starved(
                over: interval, vcpus: [Waited(nanos: 0)], mainLoop: Waited(nanos: 0, stopped: true)),
            interval, "a stopped main loop: the whole interval")
        XCTAssertEqual(
            VCPUStarvation.starved(over: interval, vcpus: [Waited(nanos: 0)], mainLoop: Waited(nanos: 400 * ms)),
            interval,
            "never more than the interval")
        XCTAssertEqual(VCPUStarvation.starved(over: interval, vcpus: [], mainLoop: Waited(nanos: 50 * ms)), 0)
    }
}
