import FTVMDataPlane
import FTVMSystem
import Foundation

/// How the daemon decides that a primary has failed. Pure logic, driven by a caller-supplied
/// clock so it can be tested without waiting.
public struct HealthPolicy: Sendable, Codable, Equatable {
    /// How often the daemon samples the primary's heartbeat (and checks events and services).
    public var tickMillis: Int = 100
    /// Failure is declared after this many ticks without a heartbeat change, counted in the time
    /// the primary's vCPU could run (`HeartbeatDetector`).
    /// The agent beats every 20 ms at real-time priority, so a healthy guest changes the counter
    /// several times per tick; the margin covers TCG scheduling hiccups under load (see
    /// docs/failover.md for the soak that chose it).
    public var missedTicks: Int = 5
    /// After a resume the guest's timers catch up; give the agent this long before judging it.
    public var graceMillis: Int = 1000
    /// A client segment that needs an answer (data, SYN, FIN) went to the primary and the
    /// primary has sent no frame at all for this long: its data path is dead even if its agent
    /// beats (seen: a virtio-net TX queue that stopped under TCG, docs/failover.md).
    public var dataPathStallMillis: Int = 3000
    /// The stall limit is counted in the time the primary's vCPU could run; this wall-clock
    /// bound ends the wait for a QEMU that never gets to run (stopped, or starved of the host's
    /// CPU for good): it serves nobody either.
    public var starvedStallLimitMillis: Int = 10_000

    public init() {}

    /// A field an older daemon's status lacks takes its default (`ftvm status` reads the status
    /// of whichever daemon runs).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = HealthPolicy()
        tickMillis = try container.decodeIfPresent(Int.self, forKey: .tickMillis) ?? defaults.tickMillis
        missedTicks = try container.decodeIfPresent(Int.self, forKey: .missedTicks) ?? defaults.missedTicks
        graceMillis = try container.decodeIfPresent(Int.self, forKey: .graceMillis) ?? defaults.graceMillis
        dataPathStallMillis =
            try container.decodeIfPresent(Int.self, forKey: .dataPathStallMillis) ?? defaults.dataPathStallMillis
        starvedStallLimitMillis =
            try container.decodeIfPresent(Int.self, forKey: .starvedStallLimitMillis)
            ?? defaults.starvedStallLimitMillis
    }

    /// A still counter fails after this much time the guest could have used to move it.
    public var stallLimitMillis: Int { tickMillis * missedTicks }
    /// A still counter fails after this much wall time, however starved the guest was. Never
    /// below `stallLimitMillis`, so a long tick policy is not cut short by the default bound.
    public var wallStallLimitMillis: Int { max(stallLimitMillis, starvedStallLimitMillis) }
}

/// Detects a heartbeat counter that stopped moving while the guest could have moved it. Times
/// are milliseconds on any monotonic clock the caller chooses (tests use a fake one).
///
/// The stall limit is counted in the time the primary's vCPU could run: wall time minus what
/// the caller reports as starved (its vCPU thread waited for a host CPU, or QEMU was stopped).
/// A vCPU that ran, or halted by itself (an idle guest), had its chance: a hung kernel or a
/// dead agent is caught as soon as with a wall clock. A QEMU the host did not let run is not
/// failed for it, up to `HealthPolicy.wallStallLimitMillis`.
public struct HeartbeatDetector: Sendable {
    public let policy: HealthPolicy
    private var lastValue: UInt64?
    private var lastChange = 0
    private var lastSample = 0
    /// Since the last change: the time the guest could have run.
    private var runnableSinceChange = 0
    private var graceUntil = 0
    /// Whether the current still spell was already counted in `stallsForgiven`.
    private var forgiving = false
    /// Still spells that reached the stall limit in wall time but not in the time the guest
    /// could run: what a wall-clock detector would have failed over. Kept across `reset`.
    public private(set) var stallsForgiven = 0

    public init(policy: HealthPolicy) {
        self.policy = policy
    }

    /// Starts judging a (new) primary afresh at `now`, after the grace period.
    public mutating func reset(atMillis now: Int) {
        lastValue = nil
        lastChange = now
        lastSample = now
        runnableSinceChange = 0
        forgiving = false
        graceUntil = now + policy.graceMillis
    }

    /// Until when (ms) a fresh primary is not judged.
    public var graceEndsMillis: Int { graceUntil }

    /// Feeds one sample: the counter at `now`, and how much of the time since the previous
    /// sample the guest's vCPU could not run (`starvedMillis`, 0 when unknown). Returns how long
    /// (wall ms) the counter has been still when that is a failure.
    public mutating func observe(_ value: UInt64, atMillis now: Int, starvedMillis: Int = 0) -> Int? {
        let interval = max(0, now - lastSample)
        lastSample = now
        if value != lastValue {
            lastValue = value
            lastChange = now
            runnableSinceChange = 0
            forgiving = false
            return nil
        }
        // A gap between samples longer than the stall limit is time the daemon itself did not
        // run: nobody watched, and it is not charged to the guest; the samples after it judge.
        // (Seen twice in 45 service-crash rounds: the health loop stood 1.2 and 1.8 s while the
        // host removed the previous failed guest, and the primary's QEMU main loop got no CPU
        // time in those 1.8 s either: its timers did not fire, its guest could not beat.)
        if interval <= policy.stallLimitMillis {
            runnableSinceChange += interval - min(max(0, starvedMillis), interval)
        }
        let still = now - lastChange
        guard now >= graceUntil else { return nil }
        if runnableSinceChange >= policy.stallLimitMillis || still >= policy.wallStallLimitMillis { return still }
        if still >= policy.stallLimitMillis, !forgiving {
            forgiving = true
            stallsForgiven += 1
        }
        return nil
    }
}

/// Judges the data path by the same measure as the heartbeat: a client segment that needs an
/// answer and has had none from the primary fails it after `HealthPolicy.dataPathStallMillis`
/// of the time the primary's QEMU could run, or after `wallStallLimitMillis` of wall time
/// (whichever is longer of the two limits), not after the same span of wall time: a guest the
/// host stopped or starved answers nobody, and is not dead for it (docs/failover.md, "Starved,
/// not hung"). A spell is known by when its first unanswered segment was sent; the starvation
/// is counted from the first turn that sees it. Times: `now` and `since` in monotonic nanos.
public struct DataPathClock: Sendable {
    public let policy: HealthPolicy
    private var spell: UInt64 = 0
    private var starvedInSpell = 0
    private var forgiving = false
    /// Spells that reached the limit in wall time but not in the time the guest could run.
    public private(set) var stallsForgiven = 0

    public init(policy: HealthPolicy) {
        self.policy = policy
    }

    /// Feeds one turn: when the oldest unanswered client segment was sent (nil: none waits), and
    /// how much of the time since the previous turn the guest could not run. Returns how long
    /// (wall ms) the segment has waited when that is a failure.
    public mutating func observe(unansweredSince since: UInt64?, now: UInt64, starvedMillis: Int) -> Int? {
        guard let since, now > since else {
            spell = 0
            return nil
        }
        if since != spell {
            spell = since
            starvedInSpell = 0
            forgiving = false
        } else {
            starvedInSpell += max(0, starvedMillis)
        }
        let waiting = Int((now - since) / 1_000_000)
        let couldRun = waiting - min(starvedInSpell, waiting)
        if couldRun >= policy.dataPathStallMillis
            || waiting >= max(policy.dataPathStallMillis, policy.starvedStallLimitMillis)
        {
            return waiting
        }
        if waiting >= policy.dataPathStallMillis, !forgiving {
            forgiving = true
            stallsForgiven += 1
        }
        return nil
    }
}

/// Judges the guest agent's "service hung" reports by how much of the probes' time the guest
/// could run. The agent probes its services inside the guest against the guest's clock (an
/// answer within 1 s, two misses in a row); a guest whose QEMU waits for a host CPU sees that
/// clock run on while it cannot, and reports a healthy service hung (seen: three false failovers
/// in one run of the mixed-workload tests while a benchmark shared the 2-core host).
///
/// A report stands at once when the guest could run for most of the probes' span
/// (`probeSpanMillis`): a hung service under no contention is failed over as soon as before.
/// Otherwise it is held while the guest is starved, and stands once it has lasted
/// `HealthPolicy.starvedStallLimitMillis` of wall time. Times are milliseconds on the caller's
/// monotonic clock; pure, so every case is a unit test.
public struct StarvedProbeGate: Sendable {
    /// What the agent's verdict covers: two probes, each up to 1 s after a 0.5 s interval.
    public static let probeSpanMillis = 3000
    /// A report made while the guest lost more than this share of the span is held.
    public static let starvedShareHeld = 0.25
    private static let bucketMillis = 100

    public let policy: HealthPolicy
    /// The last span in buckets of `bucketMillis`: wall and starved time in each.
    private var wall = [Int](repeating: 0, count: probeSpanMillis / bucketMillis)
    private var starved = [Int](repeating: 0, count: probeSpanMillis / bucketMillis)
    private var bucket = 0
    private var bucketStart = 0
    private var lastSample = 0
    /// When the current hung report was first seen (nil: none).
    private var hungSince: Int?
    /// Reports held for starvation, one per spell: what a plain check would have failed over.
    public private(set) var reportsHeld = 0
    private var holding = false

    public init(policy: HealthPolicy) {
        self.policy = policy
    }

    /// Starts judging a (new) primary afresh at `now`.
    public mutating func reset(atMillis now: Int) {
        self = StarvedProbeGate(policy: policy, reportsHeld: reportsHeld)
        bucketStart = now
        lastSample = now
    }

    private init(policy: HealthPolicy, reportsHeld: Int) {
        self.policy = policy
        self.reportsHeld = reportsHeld
    }

    /// Feeds one sample: how much of the time since the previous one the guest could not run.
    public mutating func note(starvedMillis: Int, atMillis now: Int) {
        let interval = max(0, now - lastSample)
        lastSample = now
        if now - bucketStart >= Self.probeSpanMillis {
            // A gap longer than the span (a loop held up): what came before it is out of the span.
            wall = wall.map { _ in 0 }
            starved = starved.map { _ in 0 }
            bucketStart = now
        }
        while now - bucketStart >= Self.bucketMillis {
            bucketStart += Self.bucketMillis
            bucket = (bucket + 1) % wall.count
            wall[bucket] = 0
            starved[bucket] = 0
        }
        wall[bucket] += interval
        starved[bucket] += min(max(0, starvedMillis), interval)
    }

    /// The share of the last span the guest could not run.
    public var starvedShare: Double {
        let total = wall.reduce(0, +)
        return total > 0 ? Double(starved.reduce(0, +)) / Double(total) : 0
    }

    /// Whether the agent's report at `now` (`hung`: some service reported hung) stands.
    public mutating func stands(hung: Bool, atMillis now: Int) -> Bool {
        guard hung else {
            hungSince = nil
            holding = false
            return false
        }
        let since = hungSince ?? now
        hungSince = since
        if starvedShare <= Self.starvedShareHeld || now - since >= policy.starvedStallLimitMillis { return true }
        if !holding {
            holding = true
            reportsHeld += 1
        }
        return false
    }
}

/// Why the primary was given up (or handed over on purpose).
public enum FailureCause: Sendable, Equatable, Codable, CustomStringConvertible {
    case heartbeatStalled(millis: Int)
    case dataPathStalled(millis: Int)
    case kernelPanic
    case qemuDied(reason: String)
    case serviceFailed(name: String, exit: Int32)
    case serviceHung(name: String)
    case agentFailed
    /// The primary's vCPUs were stopped by someone else (`virsh suspend`, or QEMU itself on an
    /// I/O error): it serves nobody, so the backup takes over.
    case pausedOutside(how: String)
    case manual

    public var description: String {
        switch self {
        case .heartbeatStalled(let millis): "heartbeat stalled for \(millis) ms (kernel hang or agent gone)"
        case .dataPathStalled(let millis):
            "the primary sent no frame for \(millis) ms while client segments or the relay's probe waited for an answer (its network is stuck)"
        case .kernelPanic: "guest kernel panic (pvpanic)"
        case .qemuDied(let reason): "QEMU process gone (\(reason))"
        case .serviceFailed(let name, let exit):
            exit < 0 ? "service \(name) killed by signal \(-exit)" : "service \(name) exited with status \(exit)"
        case .serviceHung(let name): "service \(name) stopped answering its health probe"
        case .agentFailed: "the guest agent reports failure"
        case .pausedOutside(let how): "the primary was paused outside ftvm (\(how))"
        case .manual: "planned failover (ftvm failover)"
        }
    }
}

/// One recovery, timed by phase (invariant 7): what `ftvm status` shows and the log records.
public struct RecoveryRecord: Sendable, Codable, Equatable {
    public struct Phase: Sendable, Codable, Equatable {
        public var name: String
        /// This phase alone.
        public var millis: Double
        /// From the detection to the end of this phase.
        public var sinceDetectionMillis: Double
    }

    public var cause: String
    /// The fault `ftvm inject` put in, when this recovery answers one.
    public var injectedFault: String?
    /// From the injection to the detection, when there was an injection.
    public var detectMillis: Double?
    public var failedDomain: String
    public var newPrimary: String
    public var startedAt: String
    public var phases: [Phase] = []
    /// The connections the takeover replayed.
    public var replay: ReplaySummary?
    public var reprotected = false
    public var error: String?
    /// What made this recovery unusual without making it fail: a restarted daemon finished it, or
    /// the backup could not run and a fresh guest was booted instead.
    public var notes: [String]?
}

/// A replay's outcome as `ftvm status` shows it: counts, reasons, and times from the detection.
public struct ReplaySummary: Sendable, Codable, Equatable {
    public var connections: Int
    public var spliced: Int
    /// Of those spliced, open responses resumed with a range request rather than regenerated
    /// (docs/replay.md, "Range resume"); nil from a daemon older than this field.
    public var rangeResumed: Int?
    public var reset: Int
    public var closedDuringReplay: Int
    /// Still pending when the takeover stopped waiting for them (deep responses still
    /// regenerating); a replay that settles later replaces this summary with its outcome.
    public var pending: Int
    /// Relay-server connections still waiting for the new guest to open them again when the
    /// takeover was filed (their splice comes later and is not counted in `spliced`); nil from a
    /// daemon older than this field.
    public var awaitingReopen: Int?
    public var resets: [String]
    /// From the detection to the last connection spliced, and to the first byte a client did not
    /// have (nil: none yet).
    public var lastSplicedMillis: Double?
    public var firstByteMillis: Double?
    public var connectionTimings: [ConnectionReplayTiming]

    init(_ report: ReplayReport, since start: UInt64) {
        connections = report.connections
        spliced = report.spliced
        rangeResumed = report.rangeResumed
        reset = report.reset
        closedDuringReplay = report.closedDuringReplay
        pending = report.pending
        awaitingReopen = report.awaitingReopen
        resets = report.resets
        lastSplicedMillis = report.lastSplicedNanos > 0 ? PhaseTimer.millis(report.lastSplicedNanos &- start) : nil
        firstByteMillis = report.firstByteNanos > 0 ? PhaseTimer.millis(report.firstByteNanos &- start) : nil
        connectionTimings = report.connectionTimings
    }
}

/// Records consecutive phases against the monotonic clock (nanoseconds, see `Monotonic`).
struct PhaseTimer: Sendable {
    /// The detection (or the upgrade's start) that the phases are timed from.
    let start: UInt64
    private var last: UInt64
    private(set) var phases: [RecoveryRecord.Phase] = []

    init(start: UInt64) {
        self.start = start
        self.last = start
    }

    /// Continues a timing whose earlier phases were recorded elsewhere.
    init(start: UInt64, resumingAfter phases: [RecoveryRecord.Phase]) {
        self.start = start
        self.last = start &+ UInt64((phases.last?.sinceDetectionMillis ?? 0) * 1e6)
        self.phases = phases
    }

    mutating func mark(_ phase: RecoveryPhase, at now: UInt64) {
        phases.append(
            RecoveryRecord.Phase(
                name: phase.rawValue, millis: Self.millis(now &- last), sinceDetectionMillis: Self.millis(now &- start))
        )
        last = now
    }

    static func millis(_ nanos: UInt64) -> Double { Monotonic.millis(nanos) }
}
