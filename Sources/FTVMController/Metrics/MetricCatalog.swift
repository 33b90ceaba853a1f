/// Every metric the daemon exports: name, type, labels and meaning. The one list the metrics
/// factory takes help texts and buckets from, docs/metrics.md documents, and the tests check.
public struct MetricDescription: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public var name: String
    public var kind: Kind
    /// Label names besides `pair`, which every metric has.
    public var labels: [String]
    public var help: String
}

public enum MetricCatalog {
    /// Histogram buckets in seconds, for every histogram: a pause fence takes milliseconds, a
    /// destroy fence seconds, a re-protection (booting a guest under TCG) up to minutes.
    public static let bucketSeconds: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
    ]

    public static let all: [MetricDescription] = [
        .init(
            name: "ftvm_protected", kind: .gauge, labels: [],
            help: "1 when a primary serves and a paused backup is ready to take over, else 0."),
        .init(
            name: "ftvm_recoveries_total", kind: .counter, labels: ["cause"],
            help: "Primary failures handled (takeovers, and failures met with no backup ready), by cause."),
        .init(
            name: "ftvm_detection_seconds", kind: .histogram, labels: ["fault"],
            help: "From a fault injected with ftvm inject to its detection, in seconds."),
        .init(
            name: "ftvm_recovery_phase_seconds", kind: .histogram, labels: ["phase"],
            help:
                "Duration of each recovery phase (fence, switch, resume, boot, first-packet, replay, first-byte, re-protected) alone, in seconds."
        ),
        .init(
            name: "ftvm_replay_connections_total", kind: .counter, labels: [],
            help: "Connections a replay took up (takeovers and upgrades)."),
        .init(
            name: "ftvm_replay_spliced_total", kind: .counter, labels: [],
            help: "Replayed connections spliced: carried on by the new guest."),
        .init(
            name: "ftvm_replay_range_resumed_total", kind: .counter, labels: [],
            help: "Of the spliced, open responses resumed with a range request rather than regenerated."),
        .init(
            name: "ftvm_replay_resets_total", kind: .counter, labels: ["reason"],
            help: "Replayed connections reset (never corrupted), by reason."),
        .init(
            name: "ftvm_replay_client_closed_total", kind: .counter, labels: [],
            help: "Replayed connections their client reset before they were spliced."),
        .init(
            name: "ftvm_connections_open", kind: .gauge, labels: ["protection"],
            help: "Open connections in the connection log: protected (a failover carries them) or unprotected."),
        .init(
            name: "ftvm_connections_logged_total", kind: .counter, labels: [],
            help: "Client connections the log recorded since it was created."),
        .init(
            name: "ftvm_connections_unprotected_total", kind: .counter, labels: ["cause"],
            help: "Connections served unprotected since the log was created, by cause."),
        .init(
            name: "ftvm_log_held_bytes", kind: .gauge, labels: [],
            help: "Client bytes the connection log holds for open connections."),
        .init(
            name: "ftvm_log_capacity_bytes", kind: .gauge, labels: [],
            help: "Client bytes the connection log can hold."),
        .init(
            name: "ftvm_relay_frames_total", kind: .counter, labels: ["direction"],
            help: "Ethernet frames the relay forwarded, to the guest or to the clients."),
        .init(
            name: "ftvm_relay_bytes_total", kind: .counter, labels: ["direction"],
            help: "Ethernet frame bytes the relay forwarded, to the guest or to the clients."),
        .init(
            name: "ftvm_relay_frames_dropped_total", kind: .counter, labels: [],
            help: "Frames the relay dropped (from a guest not on the uplink, or with nowhere to go)."),
        .init(
            name: "ftvm_relay_frames_held_total", kind: .counter, labels: [],
            help: "Client frames held while a takeover ran, then delivered to the new guest."),
        .init(
            name: "ftvm_heartbeat_age_seconds", kind: .gauge, labels: ["domain", "role"],
            help: "Time since the guest's agent heartbeat last moved, in seconds (a paused backup's does not move)."),
        .init(
            name: "ftvm_heartbeat_stalls_forgiven_total", kind: .counter, labels: [],
            help:
                "Primary heartbeats still past the stall limit in wall time but not in the time its vCPU could run (QEMU starved of host CPU or stopped): not failed over."
        ),
    ]

    public static func named(_ name: String) -> MetricDescription? { all.first { $0.name == name } }
}
