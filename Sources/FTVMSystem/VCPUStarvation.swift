import Glibc

/// How long a QEMU's guest could not run because of the host: its vCPU threads waited on a
/// runqueue for a host CPU, or the process was stopped (SIGSTOP). Read from procfs, for the
/// heartbeat detector to count only the time the guest could have beaten in.
///
/// Per thread, `/proc/PID/task/TID/schedstat` gives the nanoseconds spent waiting on a
/// runqueue (`run_delay`, kept with CONFIG_SCHED_INFO), and `/proc/PID/task/TID/stat` the
/// state: `T` (or `t`, traced) means stopped, and the whole interval up to that sample counts
/// as starved; a thread runnable at both ends of an interval that got no CPU time in it is
/// waiting, though the kernel reports that wait only once it ends (`Track`). A vCPU that halted by itself (an idle guest under TCG sleeps on a condition
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
    private var vcpus: [Int32: Track] = [:]
    private var mainLoop: Track?
    private var lastSampleNanos: UInt64
    private var starvedNanos: UInt64 = 0
    /// A late-reported wait not yet counted (`settle`).
    private var carried: UInt64 = 0
    /// The cpu cgroups that limit the vCPU and main-loop threads (each one's own and its
    /// parents': a domain's quota is set on its parent), with their throttled time last read.
    private var throttled: [String: UInt64?] = [:]
    private var reportedMillis: UInt64 = 0
    /// What the threads did since `beginSpell`, for a failure's log line.
    public private(set) var spell = Spell()

    /// What QEMU's threads did over a spell (since the heartbeat last moved): how long the
    /// least-run vCPU and the main loop ran and waited for a CPU, how much was counted
    /// starved, and how the spell was sampled.
    public struct Spell: Sendable, Equatable, CustomStringConvertible {
        public var vcpuRanNanos: UInt64 = 0
        public var vcpuWaitedNanos: UInt64 = 0
        public var mainRanNanos: UInt64 = 0
        public var mainWaitedNanos: UInt64 = 0
        public var starvedNanos: UInt64 = 0
        public var samples = 0
        public var longestGapNanos: UInt64 = 0

        public var description: String {
            func ms(_ nanos: UInt64) -> String { "\(nanos / 1_000_000)" }
            return "vCPU ran \(ms(vcpuRanNanos)) ms, waited \(ms(vcpuWaitedNanos)) ms; main loop ran "
                + "\(ms(mainRanNanos)) ms, waited \(ms(mainWaitedNanos)) ms; \(ms(starvedNanos)) ms counted starved; "
                + "\(samples) samples, longest gap \(ms(longestGapNanos)) ms"
        }
    }

    /// Starts a new spell (the heartbeat moved).
    public mutating func beginSpell() { spell = Spell() }

    /// Starts measuring QEMU process `pid` at `now` (Monotonic nanos).
    public init(pid: Int32, now: UInt64) {
        self.pid = pid
        lastSampleNanos = now
        findVCPUs()
        mainLoop = Self.sample(pid: pid, tid: pid).map { Track(last: $0) }
    }

    /// Samples the vCPU threads at `now` (Monotonic nanos) and returns how many milliseconds of
    /// the time since the previous call the guest could not run. The milliseconds are carved
    /// from a running total, so rounding never adds up over many short intervals.
    public mutating func starvedMillis(now: UInt64) -> Int {
        let interval = now > lastSampleNanos ? now - lastSampleNanos : 0
        lastSampleNanos = now
        if vcpus.isEmpty {
            // Not found yet (or lost): look again, and judge this interval in wall time.
            findVCPUs()
        } else {
            let counted = starved(over: interval)
            starvedNanos += counted
            spell.starvedNanos += counted
        }
        spell.samples += 1
        spell.longestGapNanos = max(spell.longestGapNanos, interval)
        let total = starvedNanos / 1_000_000
        defer { reportedMillis = total }
        return Int(total - reportedMillis)
    }

    private mutating func findVCPUs() {
        for tid in Self.vcpuThreads(of: pid) {
            vcpus[tid] = Self.sample(pid: pid, tid: tid).map { Track(last: $0) }
        }
        throttled = [:]
        for tid in Array(vcpus.keys) + [pid] {
            for directory in Self.cpuCgroups(pid: pid, tid: tid) where throttled[directory] == nil {
                throttled[directory] = Self.throttledNanos(directory)
            }
        }
    }

    /// How long QEMU's cgroups were throttled (their CPU quota spent) since the last sample:
    /// the most any of them was. Every thread in a throttled group is held off the CPU, whether
    /// it was waiting then or would have woken (a halted vCPU's timer). The kernel adds a
    /// throttled spell to the count when it ends (at the next quota period), so this is often
    /// more than the interval, and `settle` carries the rest.
    private mutating func throttledSinceLastSample() -> UInt64 {
        var most: UInt64 = 0
        for (directory, last) in throttled {
            guard let now = Self.throttledNanos(directory) else { continue }
            throttled[directory] = now
            if let last, now > last { most = max(most, now - last) }
        }
        return most
    }

    /// How much of `interval` the guest could not run (`starved(over:vcpus:mainLoop:)`); 0 when
    /// a vCPU thread cannot be read (and that one is forgotten: found again once none is left).
    private mutating func starved(over interval: UInt64) -> UInt64 {
        var waited: [Waited] = []
        var least: (ran: UInt64, waited: UInt64)?  // (the vCPU that ran least, for `spell`)
        var unreadable = false
        for tid in Array(vcpus.keys) {
            guard let now = Self.sample(pid: pid, tid: tid) else {
                vcpus[tid] = nil
                unreadable = true
                continue
            }
            let ran = now.ranNanos &- vcpus[tid]!.last.ranNanos
            let thread = vcpus[tid]!.advance(to: now, interval: interval)
            if least.map({ ran < $0.ran }) ?? true { least = (ran, thread.nanos) }
            waited.append(thread)
        }
        spell.vcpuRanNanos += least?.ran ?? 0
        spell.vcpuWaitedNanos += least?.waited ?? 0
        var mainWaited: Waited?
        if let main = Self.sample(pid: pid, tid: pid) {
            if let previous = mainLoop {
                mainWaited = mainLoop?.advance(to: main, interval: interval)
                spell.mainRanNanos += main.ranNanos &- previous.last.ranNanos
                spell.mainWaitedNanos += mainWaited?.nanos ?? 0
            } else {
                mainLoop = Track(last: main)
            }
        } else {
            mainLoop = nil
        }
        guard !unreadable else { return 0 }
        let waiting = Self.starved(over: interval, vcpus: waited, mainLoop: mainWaited)
        return Self.settle(max(waiting, throttledSinceLastSample()), within: interval, carried: &carried)
    }

    /// The most of a late-reported wait carried into later intervals.
    static let carryLimitNanos: UInt64 = 500_000_000

    /// Counts `waited` in an interval of `interval` nanoseconds: never more than the interval,
    /// and what is over it (a wait the kernel reported late, from intervals where the thread
    /// had run a little before it waited, so it was not counted as it happened) is carried into
    /// the next intervals, up to `carryLimitNanos`. Under a CPU quota (5 ms run in every
    /// 100 ms) clipping it instead lost about a sixth of each period.
    static func settle(_ waited: UInt64, within interval: UInt64, carried: inout UInt64) -> UInt64 {
        let owed = carried + waited
        let counted = min(owed, interval)
        carried = min(owed - counted, carryLimitNanos)
        return counted
    }

    /// One thread's counters at a sample: nanoseconds on a CPU and waiting on a runqueue
    /// (`/proc/PID/task/TID/schedstat`), and its state letter (`/proc/PID/task/TID/stat`).
    struct Sample: Equatable {
        var ranNanos: UInt64
        var waitNanos: UInt64
        var state: Character
    }

    /// One thread followed from sample to sample.
    ///
    /// The kernel adds a wait to `run_delay` only when the wait ends (the thread gets a CPU):
    /// a thread held off a CPU for 95 ms of every 100 (a cgroup's `cpu.max` of 5 %) shows no
    /// wait for four 20 ms samples, then 95 ms at once. Judged by `run_delay` alone, those four
    /// samples would be time the guest could run, and the fifth could forgive no more than its
    /// own 20 ms. So a thread that was runnable (`R`) at both ends of an interval and did not
    /// run at all in it is counted as waiting the whole interval as it happens (a running
    /// thread's CPU time grows at every scheduler tick, a few milliseconds), and what is counted
    /// that way (`credited`) is taken off the wait the kernel reports later, so no wait counts
    /// twice (docs/failover.md, "Starved, not hung").
    struct Track: Equatable {
        var last: Sample
        var credited: UInt64 = 0

        mutating func advance(to now: Sample, interval: UInt64) -> Waited {
            defer { last = now }
            if now.state == "T" || now.state == "t" { return Waited(nanos: 0, stopped: true) }
            let reported = now.waitNanos > last.waitNanos ? now.waitNanos - last.waitNanos : 0
            let settled = min(reported, credited)
            credited -= settled
            if last.state == "R", now.state == "R", now.ranNanos == last.ranNanos {
                credited += interval
                return Waited(nanos: interval)
            }
            return Waited(nanos: reported - settled)
        }
    }

    /// What one thread did over an interval: nanoseconds it waited on a runqueue, and whether it
    /// was stopped at the end.
    struct Waited: Equatable {
        var nanos: UInt64
        var stopped = false
    }

    /// How long the guest could not run over `interval`: the least starved vCPU's wait (the
    /// whole interval for a stopped one), or the main loop's when that is longer; 0 without
    /// vCPUs. A wait may be longer than the interval (reported late); `settle` bounds it.
    static func starved(over interval: UInt64, vcpus: [Waited], mainLoop: Waited?) -> UInt64 {
        func share(_ thread: Waited) -> UInt64 { thread.stopped ? interval : thread.nanos }
        guard let least = vcpus.map(share).min() else { return 0 }
        return max(least, mainLoop.map(share) ?? 0)
    }

    static func sample(pid: Int32, tid: Int32) -> Sample? {
        let task = "/proc/\(pid)/task/\(tid)"
        guard let schedstat = try? SmallFile.read("\(task)/schedstat"), let times = Self.times(schedstat: schedstat),
            let stat = try? SmallFile.read("\(task)/stat"), let state = Self.state(stat: stat)
        else { return nil }
        return Sample(ranNanos: times.ran, waitNanos: times.waited, state: state)
    }

    /// The directories of the cpu cgroups thread `tid` of `pid` is in: its own, then each
    /// parent's up to (not including) the root. cgroup v1 (a `cpu` controller line, mounted at
    /// /sys/fs/cgroup/cpu or cpu,cpuacct) or v2 (the `0::` line, mounted at /sys/fs/cgroup);
    /// none when no such directory has a cpu.stat.
    static func cpuCgroups(pid: Int32, tid: Int32) -> [String] {
        guard let text = try? SmallFile.read("/proc/\(pid)/task/\(tid)/cgroup") else { return [] }
        for (bases, path) in cgroupCandidates(text) {
            for base in bases where access("\(base)\(path)/cpu.stat", R_OK) == 0 {
                var directories: [String] = []
                var current = Substring(path)
                while current.count > 1 {
                    directories.append(base + current)
                    current = current[..<(current.lastIndex(of: "/") ?? current.startIndex)]
                }
                return directories
            }
        }
        return []
    }

    /// From a /proc/…/cgroup text, where the cpu controller's directory may be: the mount
    /// points to try and the group's path, v1 first.
    static func cgroupCandidates(_ text: String) -> [(bases: [String], path: String)] {
        var found: [(bases: [String], path: String)] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].hasPrefix("/") else { continue }
            if fields[1].split(separator: ",").contains("cpu") {
                found.insert((["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"], String(fields[2])), at: 0)
            } else if fields[0] == "0", fields[1].isEmpty {
                found.append((["/sys/fs/cgroup"], String(fields[2])))
            }
        }
        return found
    }

    private static func throttledNanos(_ directory: String) -> UInt64? {
        (try? SmallFile.read("\(directory)/cpu.stat")).flatMap(throttledNanos(cpuStat:))
    }

    /// The time a cgroup spent throttled, from its cpu.stat: `throttled_time` (ns, v1) or
    /// `throttled_usec` (v2).
    static func throttledNanos(cpuStat: String) -> UInt64? {
        for line in cpuStat.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let value = UInt64(fields[1]) else { continue }
            if fields[0] == "throttled_time" { return value }
            if fields[0] == "throttled_usec" { return value * 1000 }
        }
        return nil
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

    /// The first two fields of a schedstat line ("on-CPU ns, runqueue-wait ns, timeslices").
    static func times(schedstat: String) -> (ran: UInt64, waited: UInt64)? {
        let fields = schedstat.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 3, let ran = UInt64(fields[0]), let waited = UInt64(fields[1]) else { return nil }
        return (ran, waited)
    }

    /// The state letter of a stat line: the field after the command, which is in parentheses
    /// and may itself hold spaces and parentheses, so it is found after the last ')'.
    static func state(stat: String) -> Character? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].first { $0 != " " }
    }
}
