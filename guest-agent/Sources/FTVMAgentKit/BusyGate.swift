/// Whether a service that misses its liveness probes is hung or only busy (docs/failover.md,
/// "Busy, not hung").
///
/// A probe fails when the service does not answer within its deadline. A stopped process, one
/// deadlocked on a lock or blocked for good uses no CPU meanwhile; one working through heavy
/// requests (TLS encryption under TCG on nginx's one worker, say) answers late because it is
/// busy, and its clients are being served. The agent samples the CPU time of the service's
/// processes around each probe, and the time they waited for the guest's CPU (runnable, on a
/// run queue: a guest whose one vCPU is taken by the kernel's network work and other services
/// leaves a busy service waiting, not running): a failure while they ran or waited for at
/// least `busyShare` of the window is a busy one. Silent failures report the service hung after `failuresToReport` in a row, as
/// before; busy ones only after `busyLimitMillis` without an answer (a loop that spins forever
/// is a hang too, found later). Pure: the agent feeds it, the tests drive it.
public struct BusyGate: Sendable, Equatable {
    /// A fifth of one CPU. Measured: nginx encrypting a TLS download on a one-vCPU TCG guest got
    /// 30-44 % of the window (the guest's kernel took much of the rest); a stopped, deadlocked
    /// or blocked service gets none.
    public static let busyShare = 0.2
    public static let busyLimitMillis = 10_000

    private var silentFailures = 0
    private var busySince: Int?

    public init() {}

    /// A failed probe, whose window of `windowMillis` the service's processes spent `cpuMillis`
    /// running (nil: not known, counted as silent) and `waitedMillis` waiting to run. Returns
    /// whether the service is now hung.
    public mutating func failed(
        cpuMillis: Int?, waitedMillis: Int = 0, windowMillis: Int, atMillis now: Int, failuresToReport: Int
    ) -> Bool {
        if let cpuMillis, windowMillis > 0,
            Double(cpuMillis + max(0, waitedMillis)) >= Self.busyShare * Double(windowMillis)
        {
            silentFailures = 0
            let since = busySince ?? now
            busySince = since
            return now - since >= Self.busyLimitMillis
        }
        busySince = nil
        silentFailures += 1
        return silentFailures >= failuresToReport
    }

    /// The service answered a probe.
    public mutating func answered() {
        silentFailures = 0
        busySince = nil
    }
}

/// CPU time from `/proc/PID/stat`, and time waited for a CPU from `/proc/PID/schedstat`, for the
/// busy gate.
public enum ProcessCPU {
    /// The nanoseconds a process waited on a run queue, from its `/proc/PID/schedstat` line (time
    /// on a CPU, time waiting, time slices: the kernel's `sched_info`).
    public static func waitNanos(schedstat text: String) -> UInt64? {
        let fields = text.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 3 else { return nil }
        return UInt64(fields[1])
    }

    /// The process group and the user + system clock ticks of one `/proc/PID/stat` line
    /// (`ProcStat`).
    public static func groupAndTicks(stat text: String) -> (group: Int32, ticks: UInt64)? {
        guard let fields = ProcStat.fieldsAfterCommand(text), fields.count >= 13, let group = Int32(fields[2]),
            let user = UInt64(fields[11]),
            let system = UInt64(fields[12])
        else { return nil }
        return (group, user + system)
    }
}

/// What a service's processes used of the CPU so far: clock ticks run (`/proc/PID/stat`) and
/// nanoseconds waited on a run queue (`/proc/PID/schedstat`).
public struct CPUUsage: Sendable, Equatable {
    public var ticks: UInt64 = 0
    public var waitNanos: UInt64 = 0

    public init(ticks: UInt64 = 0, waitNanos: UInt64 = 0) {
        self.ticks = ticks
        self.waitNanos = waitNanos
    }

    public static func + (left: CPUUsage, right: CPUUsage) -> CPUUsage {
        CPUUsage(ticks: left.ticks &+ right.ticks, waitNanos: left.waitNanos &+ right.waitNanos)
    }

    /// What was used between an earlier sample (`right`) and this one.
    public static func - (left: CPUUsage, right: CPUUsage) -> CPUUsage {
        CPUUsage(ticks: left.ticks &- right.ticks, waitNanos: left.waitNanos &- right.waitNanos)
    }
}
