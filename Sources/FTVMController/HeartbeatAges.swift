import Synchronization

/// How long each guest's heartbeat counter has stood still, as the daemon saw it.
///
/// The counter is a bare count (the agent's clock in the channel is the guest's, not the
/// host's), so the age is measured on the host: the health loop samples every guest each pass
/// and remembers when it last saw each counter change. A paused backup's age grows from its
/// pause (or from when this daemon first saw it, after a restart); a live primary's stays
/// within one agent tick plus one loop pass.
final class HeartbeatAges: Sendable {
    private struct Sample {
        var value: UInt64
        var changedAtNanos: UInt64
    }

    private let samples = Mutex<[String: Sample]>([:])

    /// Records the counters of `guests` (domain, counter) at `now`; forgets guests not listed.
    func observe(_ guests: [(domain: String, heartbeat: UInt64)], atNanos now: UInt64) {
        samples.withLock { samples in
            var next: [String: Sample] = [:]
            for guest in guests {
                if let seen = samples[guest.domain], seen.value == guest.heartbeat {
                    next[guest.domain] = seen
                } else {
                    next[guest.domain] = Sample(value: guest.heartbeat, changedAtNanos: now)
                }
            }
            samples = next
        }
    }

    /// Milliseconds since `domain`'s counter last changed, or nil when it was never sampled.
    func ageMillis(of domain: String, atNanos now: UInt64) -> Double? {
        samples.withLock { $0[domain] }.map { PhaseTimer.millis(now &- min(now, $0.changedAtNanos)) }
    }
}
