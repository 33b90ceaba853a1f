/// A decoded libvirt lifecycle event (`VIR_DOMAIN_EVENT_ID_LIFECYCLE`: event + detail).
///
/// The numbers come from `libvirt-domain.h` (`virDomainEventType` and its `…DetailType` enums),
/// which are stable ABI; values newer than libvirt 9.0 arrive as `.other(n)` rather than being
/// dropped. Observed on libvirt 9.0 with ftvm's definition:
/// - `virDomainCreate`: `resumed(.unpaused)` then `started(.booted)` (QEMU starts paused, -S).
/// - `virDomainDestroy`: `shutdown(.host)` then `stopped(.destroyed)`.
/// - guest kernel panic with `on_crash=preserve`: `crashed(.panicked)`; the domain stays active.
public enum LifecycleEvent: Sendable, Hashable, CustomStringConvertible {
    case defined(Defined)
    case undefined
    case started(Started)
    case suspended(Suspended)
    case resumed(Resumed)
    case stopped(Stopped)
    /// The guest (or QEMU, on the host's request) finished shutting down; `stopped` follows.
    case shutdown(Shutdown)
    case pmSuspended
    case crashed(Crashed)
    /// An event type this code does not know.
    case unknown(event: Int32, detail: Int32)

    public enum Defined: Sendable, Hashable {
        case added, updated, renamed, fromSnapshot
        case other(Int32)
    }

    public enum Started: Sendable, Hashable {
        case booted, migrated, restored, fromSnapshot, wakeup
        case other(Int32)
    }

    public enum Suspended: Sendable, Hashable {
        case paused, migrated, ioError, watchdog, restored, fromSnapshot, apiError, postcopy, postcopyFailed
        case other(Int32)
    }

    public enum Resumed: Sendable, Hashable {
        case unpaused, migrated, fromSnapshot, postcopy, postcopyFailed
        case other(Int32)
    }

    /// Why a domain stopped. `.destroyed` is a host-side kill (ours or an operator's); `.failed`
    /// is QEMU dying or failing to start; `.crashed` is a guest crash with `on_crash=destroy`.
    public enum Stopped: Sendable, Hashable {
        case shutdown, destroyed, crashed, migrated, saved, failed, fromSnapshot
        case other(Int32)
    }

    public enum Shutdown: Sendable, Hashable {
        /// Finished with no further detail.
        case finished
        /// The guest initiated it.
        case guest
        /// The host initiated it (e.g. `virDomainDestroy`).
        case host
        case other(Int32)
    }

    public enum Crashed: Sendable, Hashable {
        /// The guest kernel reported a panic through the pvpanic device.
        case panicked
        /// The guest panicked and loaded a crash kernel.
        case crashLoaded
        case other(Int32)
    }

    /// Decodes libvirt's `(event, detail)` pair as passed to a lifecycle callback.
    public init(event: Int32, detail: Int32) {
        switch event {
        case 0:  // VIR_DOMAIN_EVENT_DEFINED
            self = .defined([0: .added, 1: .updated, 2: .renamed, 3: .fromSnapshot][detail] ?? .other(detail))
        case 1:  // VIR_DOMAIN_EVENT_UNDEFINED
            self = .undefined
        case 2:  // VIR_DOMAIN_EVENT_STARTED
            self = .started(
                [0: .booted, 1: .migrated, 2: .restored, 3: .fromSnapshot, 4: .wakeup][detail] ?? .other(detail))
        case 3:  // VIR_DOMAIN_EVENT_SUSPENDED
            let known: [Int32: Suspended] = [
                0: .paused, 1: .migrated, 2: .ioError, 3: .watchdog, 4: .restored, 5: .fromSnapshot,
                6: .apiError, 7: .postcopy, 8: .postcopyFailed,
            ]
            self = .suspended(known[detail] ?? .other(detail))
        case 4:  // VIR_DOMAIN_EVENT_RESUMED
            self = .resumed(
                [0: .unpaused, 1: .migrated, 2: .fromSnapshot, 3: .postcopy, 4: .postcopyFailed][detail]
                    ?? .other(detail))
        case 5:  // VIR_DOMAIN_EVENT_STOPPED
            let known: [Int32: Stopped] = [
                0: .shutdown, 1: .destroyed, 2: .crashed, 3: .migrated, 4: .saved, 5: .failed, 6: .fromSnapshot,
            ]
            self = .stopped(known[detail] ?? .other(detail))
        case 6:  // VIR_DOMAIN_EVENT_SHUTDOWN
            self = .shutdown([0: .finished, 1: .guest, 2: .host][detail] ?? .other(detail))
        case 7:  // VIR_DOMAIN_EVENT_PMSUSPENDED
            self = .pmSuspended
        case 8:  // VIR_DOMAIN_EVENT_CRASHED
            self = .crashed([0: .panicked, 1: .crashLoaded][detail] ?? .other(detail))
        default:
            self = .unknown(event: event, detail: detail)
        }
    }

    public var description: String {
        switch self {
        case .defined(let detail): return "defined (\(detail))"
        case .undefined: return "undefined"
        case .started(let detail): return "started (\(detail))"
        case .suspended(let detail): return "suspended (\(detail))"
        case .resumed(let detail): return "resumed (\(detail))"
        case .stopped(let detail): return "stopped (\(detail))"
        case .shutdown(let detail): return "shutdown (\(detail))"
        case .pmSuspended: return "pm-suspended"
        case .crashed(let detail): return "crashed (\(detail))"
        case let .unknown(event, detail): return "unknown event \(event) (detail \(detail))"
        }
    }
}
