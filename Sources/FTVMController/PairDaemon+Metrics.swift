import FTVMDataPlane
import FTVMSystem

extension PairDaemon {
    /// What the metrics mirror, read from the pair's state, the relay's and the log's counters
    /// and the heartbeat clock at the moment of a scrape.
    func metricsSample() -> MetricsSample {
        let (phase, guests) = state.withLock { ($0.phase, $0.guests) }
        let ages = heartbeats.ages(now: Monotonic.nanos())
        var sample = MetricsSample(protected: phase == .protected, relay: relay.counters)
        if let southSide = relay.southSide {
            let usage = southSide.log.usage
            sample.log = MetricsSample.Log(
                protectedOpen: usage.slotsUsed - usage.unprotectedNow, unprotectedOpen: usage.unprotectedNow,
                heldBytes: usage.bytesHeld, capacityBytes: UInt64(usage.chunkCount) * UInt64(usage.chunkSize),
                connectionsLogged: usage.counters.connectionsOpened, overBudget: usage.counters.unprotectedOverBudget,
                logFull: usage.counters.unprotectedLogFull, noSlot: usage.counters.admittedUnlogged)
            sample.replay = southSide.splicer.replayTotals
        }
        sample.heartbeatStallsForgiven = UInt64(heartbeatStallsForgiven.load(ordering: .relaxed))
        sample.heartbeats = guests.compactMap { guest in
            ages[guest.domain].map { .init(domain: guest.domain, role: guest.role.rawValue, ageNanos: $0) }
        }
        return sample
    }
}
