import FTVMDataPlane
import Metrics
import Prometheus
import Synchronization

/// What the pair's own state and counters say at a scrape: the values that gauges and
/// mirrored counters are set from. Sampled when Prometheus asks, so the relay's packet path
/// pays nothing for metrics (it already keeps relaxed atomic counters; these are read).
struct MetricsSample: Sendable {
    struct Heartbeat: Sendable, Equatable {
        var domain: String
        var role: String
        var ageNanos: UInt64
    }

    /// What the connection log says (nil: the relay runs without one).
    struct Log: Sendable, Equatable {
        var protectedOpen: Int
        var unprotectedOpen: Int
        var heldBytes: UInt64
        var capacityBytes: UInt64
        var connectionsLogged: UInt64
        var overBudget: UInt64
        var logFull: UInt64
        var noSlot: UInt64
    }

    var protected = false
    var relay = Relay.Counters()
    var log: Log?
    var replay = ReplayTotals()
    var heartbeats: [Heartbeat] = []
    var heartbeatStallsForgiven: UInt64 = 0
}

/// The pair's Prometheus metrics (docs/metrics.md): events (recoveries, their phases) are
/// recorded as they happen; everything that mirrors state is set from a `MetricsSample` just
/// before each exposition. Every series carries the `pair` label.
final class PairMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: CatalogMetricsFactory
    private let pair: String

    /// The phase names a takeover and its re-protection mark, in order. "boot" follows "switch"
    /// and "resume" when the backup could not run and a fresh guest took over.
    static let phases = RecoveryPhase.takeover.map(\.rawValue)

    private struct Sampled {
        /// Per mirrored counter series, the source total it was last advanced to.
        var totals: [String: UInt64] = [:]
        /// Heartbeat series exported at the last scrape, by domain and role.
        var heartbeats: Set<[String]> = []
    }
    private let sampled = Mutex(Sampled())

    init(pair: String) {
        self.pair = pair
        factory = CatalogMetricsFactory(registry: registry)
        // Series that events create are made at zero now, so a rate or a before/after
        // comparison sees them from the first scrape on.
        for cause in FailureCause.labels { counter("ftvm_recoveries_total", ("cause", cause)).increment(by: 0) }
        for phase in Self.phases { timer("ftvm_recovery_phase_seconds", ("phase", phase)) }
        for fault in Fault.allCases { timer("ftvm_detection_seconds", ("fault", fault.rawValue)) }
        update(MetricsSample())
    }

    // MARK: Events

    /// A primary failure the daemon acted on (or could not: no backup was ready).
    func recordFailure(_ cause: FailureCause) {
        counter("ftvm_recoveries_total", ("cause", cause.label)).increment()
    }

    /// From the injection of `fault` to its detection.
    func recordDetection(fault: String, millis: Double) {
        timer("ftvm_detection_seconds", ("fault", fault)).recordNanoseconds(Int64(millis * 1e6))
    }

    /// Recovery phases as `PhaseTimer` measured them (each phase alone).
    func record(phases: some Sequence<RecoveryRecord.Phase>) {
        for phase in phases {
            timer("ftvm_recovery_phase_seconds", ("phase", phase.name)).recordNanoseconds(Int64(phase.millis * 1e6))
        }
    }

    // MARK: Scrape

    /// The Prometheus text exposition (format 0.0.4) after setting what mirrors `sample`.
    func exposition(of sample: MetricsSample) -> [UInt8] {
        update(sample)
        return registry.emitToBuffer()
    }

    private func update(_ sample: MetricsSample) {
        gauge("ftvm_protected").record(sample.protected ? 1 : 0)
        let relay = sample.relay
        advance("ftvm_relay_frames_total", ("direction", "to_guest"), to: relay.framesToGuest)
        advance("ftvm_relay_frames_total", ("direction", "to_clients"), to: relay.framesToClients)
        advance("ftvm_relay_bytes_total", ("direction", "to_guest"), to: relay.bytesToGuest)
        advance("ftvm_relay_bytes_total", ("direction", "to_clients"), to: relay.bytesToClients)
        advance("ftvm_relay_frames_dropped_total", to: relay.framesDropped)
        advance("ftvm_relay_frames_held_total", to: relay.framesHeld)

        let replay = sample.replay
        advance("ftvm_replay_connections_total", to: replay.replayed)
        advance("ftvm_replay_spliced_total", to: replay.spliced)
        advance("ftvm_replay_range_resumed_total", to: replay.rangeResumed)
        advance("ftvm_replay_client_closed_total", to: replay.clientClosed)
        for reason in ReplayResetReason.allCases {
            advance("ftvm_replay_resets_total", ("reason", reason.rawValue), to: replay.resets[reason] ?? 0)
        }

        let log =
            sample.log
            ?? MetricsSample.Log(
                protectedOpen: 0, unprotectedOpen: 0, heldBytes: 0, capacityBytes: 0, connectionsLogged: 0,
                overBudget: 0, logFull: 0, noSlot: 0)
        gauge("ftvm_connections_open", ("protection", "protected")).record(log.protectedOpen)
        gauge("ftvm_connections_open", ("protection", "unprotected")).record(log.unprotectedOpen)
        gauge("ftvm_log_held_bytes").record(Double(log.heldBytes))
        gauge("ftvm_log_capacity_bytes").record(Double(log.capacityBytes))
        advance("ftvm_connections_logged_total", to: log.connectionsLogged)
        advance("ftvm_connections_unprotected_total", ("cause", "over_budget"), to: log.overBudget)
        advance("ftvm_connections_unprotected_total", ("cause", "log_full"), to: log.logFull)
        advance("ftvm_connections_unprotected_total", ("cause", "no_slot"), to: log.noSlot)

        advance("ftvm_heartbeat_stalls_forgiven_total", to: sample.heartbeatStallsForgiven)

        // One series per guest; a guest that is gone (or changed role) loses its old series.
        let current = Set(sample.heartbeats.map { [$0.domain, $0.role] })
        let gone = sampled.withLock { sampled in
            defer { sampled.heartbeats = current }
            return sampled.heartbeats.subtracting(current)
        }
        for key in gone { gauge("ftvm_heartbeat_age_seconds", ("domain", key[0]), ("role", key[1])).destroy() }
        for guest in sample.heartbeats {
            gauge("ftvm_heartbeat_age_seconds", ("domain", guest.domain), ("role", guest.role))
                .record(Double(guest.ageNanos) / 1e9)
        }
    }

    /// Brings a counter that mirrors a monotonic source total up to `total`.
    private func advance(_ name: String, _ labels: (String, String)..., to total: UInt64) {
        let key = ([name] + labels.flatMap { [$0.0, $0.1] }).joined(separator: "\u{0}")
        let delta = sampled.withLock { sampled -> UInt64 in
            let last = sampled.totals[key] ?? 0
            sampled.totals[key] = max(last, total)
            return total > last ? total - last : 0
        }
        counter(name, labels).increment(by: Int64(clamping: delta))
    }

    // MARK: swift-metrics handles (the registry returns the same series for the same labels)

    private func dimensions(_ labels: [(String, String)]) -> [(String, String)] { [("pair", pair)] + labels }

    private func counter(_ name: String, _ labels: [(String, String)]) -> Metrics.Counter {
        Metrics.Counter(label: name, dimensions: dimensions(labels), factory: factory)
    }

    private func counter(_ name: String, _ labels: (String, String)...) -> Metrics.Counter { counter(name, labels) }

    private func gauge(_ name: String, _ labels: (String, String)...) -> Metrics.Gauge {
        Metrics.Gauge(label: name, dimensions: dimensions(labels), factory: factory)
    }

    @discardableResult
    private func timer(_ name: String, _ labels: (String, String)...) -> Metrics.Timer {
        Metrics.Timer(label: name, dimensions: dimensions(labels), factory: factory)
    }
}

extension FailureCause {
    /// The `cause` label of `ftvm_recoveries_total`.
    var label: String {
        switch self {
        case .heartbeatStalled: "heartbeat_stalled"
        case .dataPathStalled: "data_path_stalled"
        case .kernelPanic: "kernel_panic"
        case .qemuDied: "qemu_died"
        case .serviceFailed: "service_failed"
        case .serviceHung: "service_hung"
        case .agentFailed: "agent_failed"
        case .pausedOutside: "paused_outside"
        case .manual: "manual"
        }
    }

    static let labels = [
        "heartbeat_stalled", "data_path_stalled", "kernel_panic", "qemu_died", "service_failed", "service_hung",
        "agent_failed", "paused_outside", "manual",
    ]
}
