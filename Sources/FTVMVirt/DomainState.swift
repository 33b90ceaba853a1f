/// A domain's state and libvirt's reason for it (`virDomainGetState`).
///
/// The reason matters to ftvm: a backup is `paused(reason: 1)` (by us, "user"); a primary that
/// panicked under `on_crash=preserve` is `crashed(reason: 1)` ("panicked"); a QEMU process that
/// died is `shutoff(reason: 6)` ("failed"). Reason numbers are libvirt's per-state enums in
/// `libvirt-domain.h` (`virDomainRunningReason`, `virDomainPausedReason`, …).
public enum DomainState: Sendable, Hashable, CustomStringConvertible {
    case running(reason: Int32)
    case paused(reason: Int32)
    case shutoff(reason: Int32)
    case crashed(reason: Int32)
    case pmSuspended(reason: Int32)
    /// `nostate`, `blocked` or `shutdown` (in progress): transient states ftvm does not act on.
    case other(state: Int32, reason: Int32)

    /// Paused by `virDomainSuspend` (`VIR_DOMAIN_PAUSED_USER`): how a backup waits.
    public static let pausedByUser = DomainState.paused(reason: 1)
    /// Panicked guest kept by `on_crash=preserve` (`VIR_DOMAIN_CRASHED_PANICKED`).
    public static let panicked = DomainState.crashed(reason: 1)

    public init(state: Int32, reason: Int32) {
        switch state {
        case 1: self = .running(reason: reason)
        case 3: self = .paused(reason: reason)
        case 5: self = .shutoff(reason: reason)
        case 6: self = .crashed(reason: reason)
        case 7: self = .pmSuspended(reason: reason)
        default: self = .other(state: state, reason: reason)
        }
    }

    /// Whether a QEMU process exists for the domain (everything but shut off).
    public var isActive: Bool {
        if case .shutoff = self { return false }
        return true
    }

    /// The state as `virsh domstate --reason` prints it, e.g. `paused (user)`.
    public var description: String {
        func named(_ state: String, _ reason: Int32, _ names: [String]) -> String {
            let reasonName = reason >= 0 && Int(reason) < names.count ? names[Int(reason)] : "reason \(reason)"
            return "\(state) (\(reasonName))"
        }
        switch self {
        case .running(let reason):
            return named(
                "running", reason,
                [
                    "unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled",
                    "save canceled", "event wakeup", "crashed", "post-copy", "post-copy failed",
                ])
        case .paused(let reason):
            return named(
                "paused", reason,
                [
                    "unknown", "user", "migrating", "saving", "dumping", "I/O error", "watchdog", "from snapshot",
                    "shutting down", "creating snapshot", "crashed", "starting up", "post-copy", "post-copy failed",
                    "api error",
                ])
        case .shutoff(let reason):
            return named(
                "shut off", reason,
                [
                    "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot",
                    "daemon",
                ])
        case .crashed(let reason):
            return named("crashed", reason, ["unknown", "panicked"])
        case .pmSuspended(let reason):
            return named("pmsuspended", reason, ["unknown"])
        case let .other(state, reason):
            let name = [0: "no state", 2: "idle", 4: "in shutdown"][state] ?? "state \(state)"
            return "\(name) (reason \(reason))"
        }
    }
}

/// One row of ``LibvirtConnection/listDomains()``.
public struct DomainSummary: Sendable, Equatable {
    public var name: String
    public var uuid: String
    public var state: DomainState
    /// Whether libvirt keeps a definition after the domain stops (ftvm's domains always are).
    public var isPersistent: Bool

    public init(name: String, uuid: String, state: DomainState, isPersistent: Bool) {
        self.name = name
        self.uuid = uuid
        self.state = state
        self.isPersistent = isPersistent
    }
}
