import Glibc

/// How long a QEMU's guest could not run because of the host: its vCPU threads waited on a
/// runqueue for a host CPU, or the process was stopped (SIGSTOP). Read from procfs, for the
/// heartbeat detector to count only the time the guest could have beaten in.
///
/// Per thread, `/proc/PID/task/TID/schedstat` gives the nanoseconds spent waiting on a
/// runqueue (`run_delay`, kept with CONFIG_SCHED_INFO), and `/proc/PID/task/TID/stat` the
/// state: `T` (or `t`, traced) means stopped, and the whole interval up to that sample counts
/// as starved. A vCPU that halted by itself (an idle guest under TCG sleeps on a condition
/// variable) is neither: that time counts as time the guest could run. With several vCPUs the
/// least starved one counts, since the agent could have run there.
///
/// QEMU's main-loop thread (the process's first) counts too: it fires the guest's timers and
/// delivers its interrupts, and under TCG a vCPU waits on the big QEMU lock while that thread
/// holds it. A main loop waiting for a host CPU leaves a halted guest asleep (its timer does
/// not fire) or a vCPU blocked on the lock, both of which look like a guest that could run and
/// did not beat. So an interval counts as starved for as long as the main loop waited, if that
/// is longer than the vCPUs' wait (docs/failover.md, "Starved, not hung").
///
/// Nothing here blocks or throws: a thread or file that cannot be read makes an interval count
/// as not starved, which leaves the detector judging in wall time, as it did before this.
/// Needs read access to QEMU's /proc entries (root, like the daemon).
public struct VCPUStarvation: Sendable {
    public let pid: Int32
    private var lastWaitNanos: [Int32: UInt64] = [:]
    private var lastMainWaitNanos: UInt64?
    private var lastSampleNanos: UInt64
    private var starvedNanos: UInt64 = 0
    private var reportedMillis: UInt64 = 0

    /// Starts measuring QEMU process `pid` at `now` (Monotonic nanos).
    public init(pid: Int32, now: UInt64) {
        self.pid = pid
        lastSampleNanos = now
        lastWaitNanos = Self.vcpuThreads(of: pid).reduce(into: [:]) { waits, tid in
            waits[tid] = sample(tid)?.waitNanos
        }
        lastMainWaitNanos = sample(pid)?.waitNanos
    }

    /// Samples the vCPU threads at `now` (Monotonic nanos) and returns how many milliseconds of
    /// the time since the previous call the guest could not run. The milliseconds are carved
    /// from a running total, so rounding never adds up over many short intervals.
    public mutating func starvedMillis(now: UInt64) -> Int {
        let interval = now > lastSampleNanos ? now - lastSampleNanos : 0
        lastSampleNanos = now
        if lastWaitNanos.isEmpty {
            // Not found yet (or lost): look again, and judge this interval in wall time.
            for tid in Self.vcpuThreads(of: pid) { lastWaitNanos[tid] = sample(tid)?.waitNanos }
        } else {
            starvedNanos += starved(over: interval)
        }
        let total = starvedNanos / 1_000_000
        defer { reportedMillis = total }
        return Int(total - reportedMillis)
    }

    /// How much of `interval` the guest could not run (`starved(over:vcpus:mainLoop:)`); 0 when
    /// a vCPU thread cannot be read (and that one is forgotten: found again once none is left).
    private mutating func starved(over interval: UInt64) -> UInt64 {
        var vcpus: [Waited] = []
        var unreadable = false
        for (tid, lastWait) in lastWaitNanos {
            guard let now = sample(tid) else {
                lastWaitNanos[tid] = nil
                unreadable = true
                continue
            }
            lastWaitNanos[tid] = now.waitNanos
            vcpus.append(Waited(nanos: now.waitNanos > lastWait ? now.waitNanos - lastWait : 0, stopped: now.stopped))
        }
        var mainLoop: Waited?
        let main = sample(pid)
        if let main, let last = lastMainWaitNanos {
            mainLoop = Waited(nanos: main.waitNanos > last ? main.waitNanos - last : 0, stopped: main.stopped)
        }
        lastMainWaitNanos = main?.waitNanos
        return unreadable ? 0 : Self.starved(over: interval, vcpus: vcpus, mainLoop: mainLoop)
    }

    /// What one thread did over an interval: nanoseconds it waited on a runqueue, and whether it
    /// was stopped at the end.
    struct Waited: Equatable {
        var nanos: UInt64
        var stopped = false
    }

    /// The part of `interval` the guest could not run: the least starved vCPU's wait (the whole
    /// interval for a stopped one), or the main loop's when that is longer; 0 without vCPUs.
    static func starved(over interval: UInt64, vcpus: [Waited], mainLoop: Waited?) -> UInt64 {
        func share(_ thread: Waited) -> UInt64 { thread.stopped ? interval : min(thread.nanos, interval) }
        guard let least = vcpus.map(share).min() else { return 0 }
        return max(least, mainLoop.map(share) ?? 0)
    }

    private func sample(_ tid: Int32) -> (waitNanos: UInt64, stopped: Bool)? {
        let task = "/proc/\(pid)/task/\(tid)"
        guard let schedstat = try? SmallFile.read("\(task)/schedstat"), let wait = Self.waitNanos(schedstat: schedstat),
            let stat = try? SmallFile.read("\(task)/stat"), let state = Self.state(stat: stat)
        else { return nil }
        return (wait, state == "T" || state == "t")
    }

    /// QEMU's vCPU threads: named "CPU N/TCG" or "CPU N/KVM" (one per vCPU), or "ALL CPUs/TCG"
    /// (round-robin TCG, one thread for all).
    static func vcpuThreads(of pid: Int32) -> [Int32] {
        guard let directory = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(directory) }
        var threads: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let tid = Int32(name), let comm = try? SmallFile.read("/proc/\(pid)/task/\(tid)/comm"),
                isVCPU(comm: comm)
            else { continue }
            threads.append(tid)
        }
        return threads
    }

    static func isVCPU(comm: String) -> Bool {
        let name = comm.hasSuffix("\n") ? comm.dropLast() : Substring(comm)
        return name.hasSuffix("/TCG") || name.hasSuffix("/KVM")
    }

    /// The second field of a schedstat line ("on-CPU ns, runqueue-wait ns, timeslices").
    static func waitNanos(schedstat: String) -> UInt64? {
        let fields = schedstat.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 3 else { return nil }
        return UInt64(fields[1])
    }

    /// The state letter of a stat line: the field after the command, which is in parentheses
    /// and may itself hold spaces and parentheses, so it is found after the last ')'.
    static func state(stat: String) -> Character? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].first { $0 != " " }
    }
}
