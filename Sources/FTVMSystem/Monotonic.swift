import Glibc

/// CLOCK_MONOTONIC in nanoseconds: one time base for the packet path (an atomic can hold it)
/// and the control plane's phase timings.
public enum Monotonic {
    public static func nanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// A duration in nanoseconds as milliseconds, to two decimals (how timings are reported).
    public static func millis(_ nanos: UInt64) -> Double { (Double(nanos) / 1e4).rounded() / 100 }

    /// Wall-clock nanoseconds since the epoch (for the guest's clock resync).
    public static func wallNanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
