import Foundation
import XCTest

@testable import FTVMSystem

/// The procfs parsing on sample text, and the meter on a real process that stands in for QEMU.
final class VCPUStarvationTests: XCTestCase {
    func testSchedstat() {
        // on-CPU ns, runqueue-wait ns, timeslices
        XCTAssertEqual(VCPUStarvation.times(schedstat: "215373062 185841 5\n")?.ran, 215_373_062)
        XCTAssertEqual(VCPUStarvation.times(schedstat: "215373062 185841 5\n")?.waited, 185_841)
        XCTAssertEqual(VCPUStarvation.times(schedstat: "0 0 1\n")?.waited, 0)
        XCTAssertNil(VCPUStarvation.times(schedstat: ""))
        XCTAssertNil(VCPUStarvation.times(schedstat: "215373062 185841"), "truncated")
        XCTAssertNil(VCPUStarvation.times(schedstat: "1 -2 3"), "not a count")
        XCTAssertNil(VCPUStarvation.times(schedstat: "x 2 3"), "not a count")
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
        let process = try standInVCPU(then: "time.sleep(60)")
        defer { if process.isRunning { process.terminate() } }
        let pid = process.processIdentifier
        XCTAssertEqual(VCPUStarvation.vcpuThreads(of: pid), [pid])

        var meter = VCPUStarvation(pid: pid, now: Monotonic.nanos())
        usleep(200_000)
        // (Half the interval: a halted vCPU that waits for a CPU on a busy host counts its wait,
        // 25 ms of 200 seen beside a fault campaign; a stopped one counts all of it.)
        XCTAssertLessThan(meter.starvedMillis(now: Monotonic.nanos()), 100, "a halted vCPU could run")

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
        XCTAssertLessThan(meter.starvedMillis(now: Monotonic.nanos()), 100, "running again")

        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(meter.starvedMillis(now: Monotonic.nanos() + 100_000_000), 0, "gone: judged in wall time")
    }

    /// A spell (since the heartbeat last moved) sums what the threads did, for a stall's log
    /// line: a spinning stand-in vCPU ran for most of it (it is its own main loop too), and a new
    /// spell starts from nothing.
    func testASpellSumsWhatTheThreadsDid() throws {
        let process = try standInVCPU(then: "while True: pass")
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        var meter = VCPUStarvation(pid: process.processIdentifier, now: Monotonic.nanos())
        let start = Monotonic.nanos()
        for _ in 0..<10 {
            usleep(30_000)
            _ = meter.starvedMillis(now: Monotonic.nanos())
        }
        let spell = meter.spell
        let wall = Monotonic.nanos() - start
        XCTAssertEqual(spell.samples, 10)
        XCTAssertGreaterThan(spell.vcpuRanNanos + spell.vcpuWaitedNanos, wall / 2, "\(spell)")
        XCTAssertEqual(
            Double(spell.mainRanNanos), Double(spell.vcpuRanNanos), accuracy: 10e6, "the same thread, read twice")
        XCTAssertGreaterThanOrEqual(spell.longestGapNanos, 30_000_000)
        XCTAssertTrue(spell.description.contains("10 samples"), spell.description)
        meter.beginSpell()
        XCTAssertEqual(meter.spell, VCPUStarvation.Spell())
    }

    /// The guest could not run for the least starved vCPU's wait, or for the main loop's (which
    /// fires its timers and holds the lock a TCG vCPU waits on) when that is longer, and nothing
    /// without a vCPU to read.
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
            400 * ms, "a wait reported late, longer than the interval (settled below)")
        XCTAssertEqual(VCPUStarvation.starved(over: interval, vcpus: [], mainLoop: Waited(nanos: 50 * ms)), 0)
    }
    /// What this host's kernel showed for a busy thread in a cgroup with `cpu.max` of 5 %,
    /// sampled every 20 ms: runnable throughout, no CPU time and no reported wait for four
    /// samples, then 5 ms run and the whole 95 ms wait at once. Counted as it happens, and the
    /// late report settles what was counted, so the 100 ms come out 95 ms starved, not 20.
    func testAThrottledThreadWaitsAsItHappensAndIsNotCountedTwice() {
        typealias Sample = VCPUStarvation.Sample
        let ms: UInt64 = 1_000_000
        var track = VCPUStarvation.Track(last: Sample(ranNanos: 50 * ms, waitNanos: 7 * ms, state: "R"))
        var starved: [UInt64] = []
        for _ in 0..<4 {
            starved.append(
                track.advance(to: Sample(ranNanos: 50 * ms, waitNanos: 7 * ms, state: "R"), interval: 20 * ms).nanos)
        }
        starved.append(
            track.advance(to: Sample(ranNanos: 55 * ms, waitNanos: 102 * ms, state: "R"), interval: 20 * ms).nanos)
        XCTAssertEqual(starved, [20, 20, 20, 20, 15].map { $0 * ms })
        XCTAssertEqual(track.credited, 0, "the report settled every credit")

        // Halted (asleep), then woken: no wait until it has been runnable for a whole interval.
        XCTAssertEqual(
            track.advance(to: Sample(ranNanos: 56 * ms, waitNanos: 102 * ms, state: "S"), interval: 20 * ms).nanos, 0)
        XCTAssertEqual(
            track.advance(to: Sample(ranNanos: 56 * ms, waitNanos: 102 * ms, state: "R"), interval: 20 * ms).nanos, 0)
        XCTAssertEqual(
            track.advance(to: Sample(ranNanos: 56 * ms, waitNanos: 102 * ms, state: "R"), interval: 20 * ms).nanos,
            20 * ms)
        // Running: its CPU time grows, and only the wait the kernel reports counts, less what
        // was counted as it happened (26 ms reported, 20 of them counted above).
        XCTAssertEqual(
            track.advance(to: Sample(ranNanos: 70 * ms, waitNanos: 128 * ms, state: "R"), interval: 20 * ms).nanos,
            6 * ms)
        XCTAssertEqual(
            track.advance(to: Sample(ranNanos: 90 * ms, waitNanos: 129 * ms, state: "R"), interval: 20 * ms).nanos,
            1 * ms)
        // Stopped: the whole interval, whatever the counters say.
        XCTAssertEqual(
            track.advance(to: Sample(ranNanos: 90 * ms, waitNanos: 129 * ms, state: "T"), interval: 20 * ms),
            VCPUStarvation.Waited(nanos: 0, stopped: true))
    }

    /// An interval counts no more than itself; a wait reported late carries into the next ones,
    /// up to a limit, so a quota's wait is neither lost nor counted twice.
    func testALateWaitCarriesIntoTheNextIntervals() {
        let ms: UInt64 = 1_000_000
        var carried: UInt64 = 0
        XCTAssertEqual(VCPUStarvation.settle(5 * ms, within: 20 * ms, carried: &carried), 5 * ms)
        XCTAssertEqual(carried, 0)
        XCTAssertEqual(VCPUStarvation.settle(35 * ms, within: 20 * ms, carried: &carried), 20 * ms)
        XCTAssertEqual(carried, 15 * ms)
        XCTAssertEqual(
            VCPUStarvation.settle(0, within: 20 * ms, carried: &carried), 15 * ms, "the rest, in the next one")
        XCTAssertEqual(carried, 0)
        XCTAssertEqual(VCPUStarvation.settle(10 * ms, within: 20 * ms, carried: &carried), 10 * ms)
        _ = VCPUStarvation.settle(5_000 * ms, within: 20 * ms, carried: &carried)
        XCTAssertEqual(carried, VCPUStarvation.carryLimitNanos, "bounded")
    }

    /// Where the cpu controller's group of a thread is: the v1 `cpu` line (as libvirt places a
    /// vCPU here), or the v2 unified line; the time a group was throttled, from its cpu.stat.
    func testCgroupsAndTheirThrottledTime() {
        let v1 =
            "3:cpuset:/machine/qemu-1-a.libvirt-qemu/vcpu0\n2:cpuacct:/\n1:cpu:/machine/qemu-1-a.libvirt-qemu/vcpu0\n0::/\n"
        let found = VCPUStarvation.cgroupCandidates(v1)
        XCTAssertEqual(found.first?.path, "/machine/qemu-1-a.libvirt-qemu/vcpu0")
        XCTAssertEqual(found.first?.bases, ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"])
        XCTAssertEqual(found.last?.bases, ["/sys/fs/cgroup"], "the unified line after")
        XCTAssertEqual(VCPUStarvation.cgroupCandidates("4:cpu,cpuacct:/a/b\n").first?.path, "/a/b")
        XCTAssertEqual(VCPUStarvation.cgroupCandidates("0::/machine.slice/x.scope\n").first?.bases, ["/sys/fs/cgroup"])
        XCTAssertTrue(VCPUStarvation.cgroupCandidates("garbage\n5:memory:/m\n").isEmpty)

        XCTAssertEqual(
            VCPUStarvation.throttledNanos(cpuStat: "nr_periods 10\nnr_throttled 10\nthrottled_time 931259679\n"),
            931_259_679)
        XCTAssertEqual(
            VCPUStarvation.throttledNanos(cpuStat: "usage_usec 5\nnr_throttled 2\nthrottled_usec 1500\n"), 1_500_000)
        XCTAssertNil(VCPUStarvation.throttledNanos(cpuStat: "usage_usec 5\n"))
    }

    /// A stand-in QEMU: a process whose thread names itself like a vCPU (`CPU 0/TCG`), then runs
    /// `body` (Python); returned once it has named itself.
    private func standInVCPU(then body: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import ctypes, time; ctypes.CDLL(None).prctl(15, b'CPU 0/TCG', 0, 0, 0); print(flush=True)\n" + body,
        ]
        let ready = Pipe()
        process.standardOutput = ready
        try process.run()
        _ = ready.fileHandleForReading.availableData
        return process
    }

    /// The same on a real thread: a stand-in vCPU that spins in a cgroup whose CPU quota is 5 %
    /// of one CPU (cgroup v1 `cpu.cfs_quota_us`, as on this host, or v2 `cpu.max`) is starved for
    /// most of a second. Needs root and a cpu controller; skipped without them.
    func testAThrottledVCPUIsStarved() throws {
        let group = try ThrottleGroup()
        defer { group.remove() }
        let process = try standInVCPU(then: "while True: pass")
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let pid = process.processIdentifier
        try group.add(pid)
        var meter = VCPUStarvation(pid: pid, now: Monotonic.nanos())
        usleep(300_000)
        _ = meter.starvedMillis(now: Monotonic.nanos())
        let from = Monotonic.nanos()
        var starved = 0
        for _ in 0..<50 {
            usleep(20_000)
            starved += meter.starvedMillis(now: Monotonic.nanos())
        }
        let wall = Int((Monotonic.nanos() - from) / 1_000_000)
        XCTAssertGreaterThan(starved, wall * 7 / 10, "starved \(starved) of \(wall) ms at a 5 % quota")
        XCTAssertLessThanOrEqual(starved, wall + 1)
    }
}

/// A cgroup with a CPU quota of 5 % of one CPU, made for one test and removed after it.
private struct ThrottleGroup {
    let directory: String
    let quotaFile: String
    let procsFile: String

    init() throws {
        let name = "ftvm-test-throttle-\(getpid())"
        if access("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", W_OK) == 0 {
            directory = "/sys/fs/cgroup/cpu/\(name)"
            quotaFile = "\(directory)/cpu.cfs_quota_us"
        } else if let controllers = try? String(
            contentsOfFile: "/sys/fs/cgroup/cgroup.subtree_control", encoding: .utf8),
            controllers.split(separator: " ").contains(where: { $0.hasPrefix("cpu") && $0.count == 3 })
        {
            directory = "/sys/fs/cgroup/\(name)"
            quotaFile = "\(directory)/cpu.max"
        } else {
            throw XCTSkip("no writable cgroup cpu controller here")
        }
        procsFile = "\(directory)/cgroup.procs"
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw XCTSkip("cannot make a cgroup (\(String(cString: strerror(errno))))")
        }
        try (quotaFile.hasSuffix("cpu.max") ? "5000 100000" : "5000").write(
            toFile: quotaFile, atomically: false, encoding: .utf8)
    }

    func add(_ pid: Int32) throws { try "\(pid)".write(toFile: procsFile, atomically: false, encoding: .utf8) }

    func remove() { rmdir(directory) }
}
