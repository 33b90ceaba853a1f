import Synchronization

/// When each guest's agent heartbeat last moved, as the health loop saw it (every few
/// milliseconds): what `ftvm_heartbeat_age_seconds` reports. A lock per health-loop turn, none
/// on the packet path.
final class HeartbeatClock: Sendable {
    private struct Seen {
        var value: UInt64
        var changedAt: UInt64
    }

    private let seen = Mutex<[String: Seen]>([:])

    /// Records the guests' current counters at `now` (Monotonic nanos); forgets other guests.
    func observe(_ heartbeats: [(domain: String, value: UInt64)], now: UInt64) {
        seen.withLock { seen in
            var next: [String: Seen] = [:]
            for (domain, value) in heartbeats {
                let previous = seen[domain]
                next[domain] =
                    previous.map { $0.value == value ? $0 : Seen(value: value, changedAt: now) }
                    ?? Seen(value: value, changedAt: now)
            }
            seen = next
        }
    }

    /// How long (nanos) each observed guest's heartbeat has stood still, at `now`.
    func ages(now: UInt64) -> [String: UInt64] {
        seen.withLock { $0.mapValues { now > $0.changedAt ? now - $0.changedAt : 0 } }
    }
}
