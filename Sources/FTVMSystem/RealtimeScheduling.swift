import Glibc

/// Whether a latency-critical thread (the relay) runs under SCHED_FIFO, and why not.
///
/// A woken SCHED_FIFO thread takes a CPU from any normal (CFS) thread at once, where a normal one
/// waits its turn: on a 2-core host whose TCG guest holds a CPU, the relay waited 25-30 us for a
/// CPU at each wake-up, twice per exchange (docs/relay.md). The bound is the kernel's RT throttling
/// (`kernel.sched_rt_runtime_us`, 950000 of each 1000000 us by default): a relay that never
/// blocks still leaves every CPU 5 % for normal threads. Where throttling is off, a runaway real-
/// time thread could hold a CPU for good, so the thread stays normal.
public enum RealtimeScheduling: Equatable, Sendable, CustomStringConvertible {
    case fifo(priority: Int32)
    case normal(reason: String)

    public static let runtimePath = "/proc/sys/kernel/sched_rt_runtime_us"

    /// The decision for `priority` (0: normal scheduling asked for) given the kernel's RT
    /// throttling setting as read from `runtimePath` (nil: unreadable).
    public static func decide(priority: Int32, rtRuntimeSetting: String?) -> RealtimeScheduling {
        guard priority > 0 else { return .normal(reason: "network.relay-priority is 0") }
        guard let text = rtRuntimeSetting, let runtime = Int(text.filter { !$0.isWhitespace }) else {
            return .normal(reason: "cannot read \(runtimePath), so real-time throttling cannot be checked")
        }
        guard runtime >= 0 else {
            return .normal(
                reason:
                    "real-time throttling is off (\(runtimePath) is -1), which would let a busy relay hold a CPU for good"
            )
        }
        guard runtime > 0 else { return .normal(reason: "\(runtimePath) is 0: no real-time thread may run") }
        return .fifo(priority: priority)
    }

    /// Decides for the calling thread and applies the decision; returns what it runs under.
    public static func applyToCurrentThread(priority: Int32) -> RealtimeScheduling {
        let setting = try? SmallFile.read(runtimePath)
        let decision = decide(priority: priority, rtRuntimeSetting: setting)
        guard case .fifo(let priority) = decision else { return decision }
        var parameter = sched_param(sched_priority: priority)
        // pid 0 is the calling thread (Linux schedules threads, not processes).
        guard sched_setscheduler(0, SCHED_FIFO, &parameter) == 0 else {
            let error = errno
            return .normal(
                reason: "sched_setscheduler(SCHED_FIFO, \(priority)) failed: \(String(cString: strerror(error)))"
                    + (error == EPERM ? " (the daemon lacks CAP_SYS_NICE or an RLIMIT_RTPRIO)" : ""))
        }
        return decision
    }

    public var description: String {
        switch self {
        case .fifo(let priority): "SCHED_FIFO \(priority)"
        case .normal(let reason): "normal (\(reason))"
        }
    }
}
