import FTVMVirt

/// The pair's lifecycle as a pure state machine: which guest serves, which waits, and what
/// the daemon must do next when something happens to either.
///
/// The shape is swift-nio's protocol state machines: a value whose `mutating func handle`
/// takes one event and returns the actions to carry out, in order. It does no I/O and reads no
/// clock, so every state × event is a row in a unit test (LifecycleTests). `PairDaemon` owns
/// one behind its mutex, feeds it what the health loop, libvirt, the control socket and its
/// own threads report, and performs the actions; performing one may report a new event
/// (a resume that failed, a replay that settled), which is fed back the same way.
///
/// Takeovers and upgrades end in one shared hand-over: fence the old guest, replay into the
/// new one, and only after the replay change roles, retire, and boot a backup (invariant 2:
/// nothing slower than the fence runs before the new guest serves; libvirt's metadata writes
/// come after it).
public struct PairLifecycle: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Booting the first pair (or adopting a restarted daemon's guests).
        case starting
        /// A primary serves and a paused backup waits.
        case protected(primary: String, backup: String)
        /// No paused backup is ready (one may be booting).
        case unprotected(Unprotected)
        /// A takeover is running.
        case takingOver(Takeover)
        /// `ftvm upgrade` is moving the service to a guest booted from a new image or disk.
        case upgrading(Upgrade)
        case stopping
    }

    public struct Unprotected: Sendable, Equatable {
        /// The guest that serves, if any does.
        public var primary: String?
        /// What `ftvm status` says about it.
        public var reason: String
        /// A backup is being booted now.
        public var reprotecting: Bool
        /// Guests kept until the pair is protected again (a fenced primary, for inspection).
        public var retiring: [String] = []
        /// The primary's failure, seen while there was nothing to fail over to (reported once).
        public var failure: FailureCause?
        /// Backups that failed to boot since the pair was last protected: the next attempt
        /// waits `retryDelaySeconds(after:)` of them.
        public var failedAttempts = 0
    }

    /// How long the lifecycle waits before booting a backup again after `failures` attempts
    /// failed in a row: 5 s, doubling, at most a minute. A pair left unprotected for good is an
    /// outage waiting for its next fault; a boot that fails at once must not spin either.
    public static func retryDelaySeconds(after failures: Int) -> Int {
        min(60, 5 << min(max(failures - 1, 0), 4))
    }

    public struct Takeover: Sendable, Equatable {
        public enum Step: Sendable, Equatable {
            /// Fencing the failed guest and resuming the successor.
            case resuming
            /// The backup could not run: a fresh guest is booting.
            case booting
            /// The successor runs; the open connections are being replayed into it.
            case replaying
        }
        public var cause: FailureCause
        public var failed: String?
        /// The guest taking over (nil while one is booted fresh).
        public var successor: String?
        public var step: Step
    }

    public struct Upgrade: Sendable, Equatable {
        public enum Step: Sendable, Equatable {
            /// The new guest boots; the old primary serves everything.
            case booting
            /// New connections go to the new guest; open ones finish on the old primary.
            case draining
            /// The old primary is fenced; what it still served is replayed into the new guest.
            case moving
        }
        public var old: String
        /// The old image's paused backup: it can still take over until the drain ends.
        public var backup: String?
        public var new: String?
        public var step: Step
        /// The old primary failed during the drain (its connections moved at once).
        public var oldFailure: FailureCause?
    }

    public enum Event: Sendable, Equatable {
        case broughtUp(primary: String, backup: String)
        /// A restarted daemon found this primary running (and this backup paused, if any).
        case adopted(primary: String, backup: String?)
        /// A restarted daemon found no running primary: the takeover starts from what is left.
        case adoptedFailed(failed: String?, backup: String?, cause: FailureCause)
        /// A restarted daemon found an upgrade's new guest ready beside the old primary: the
        /// upgrade is finished, every open connection moved into the new guest.
        case adoptedUpgrade(old: String, backup: String?, new: String)
        case failureDetected(domain: String, cause: FailureCause)
        case failoverRequested
        case successorRunning(String)
        /// The successor could not run (`domain`: the backup that failed to resume; nil: no
        /// guest could be booted either).
        case successorFailed(domain: String?, reason: String)
        case replaySettled
        case backupLost(domain: String, why: String)
        /// The paused backup's vCPUs run (`virsh resume`).
        case backupRunning(String)
        case backupReady(String)
        /// The backup being booted did not become ready (`domain`: the guest left half-made, if
        /// one was defined).
        case backupFailed(domain: String?, reason: String)
        /// The wait after a failed re-protection (`retryReprotection`) is over.
        case reprotectionDue
        case upgradeRequested
        case upgradeGuestReady(String)
        case upgradeGuestFailed(domain: String?, reason: String)
        case drainEnded
        case stopRequested
    }

    public enum Action: Sendable, Equatable {
        /// Opens the recovery's record and timer (cause, failed guest, successor).
        case beginRecovery(cause: FailureCause, failed: String?, successor: String?)
        /// Hold client frames and drop everything the primary sends (invariant 2).
        case cutOff
        /// Pause or destroy the guest; nil: its QEMU is gone, nothing to stop. Marks "fence".
        case fence(String?)
        /// The relay forwards to this guest. Marks "switch".
        case connect(String)
        /// Runs the paused guest (reports `successorRunning` or `successorFailed`). Marks "resume".
        case resume(String)
        /// Boots a fresh primary and connects it (reports `successorRunning` or
        /// `successorFailed`). Marks "boot".
        case bootSuccessor
        /// Replays the open connections (the drained guest's only, for an upgrade) into the
        /// guest and waits for them to settle (reports `replaySettled`).
        case replay(into: String, pinnedOnly: Bool)
        case setRole(GuestMetadata.Role, String)
        /// Closes the recovery's record (`ftvm status`, metrics).
        case finishRecovery
        /// Boots and pauses a backup in the background (reports `backupReady` or `backupFailed`).
        case bootBackup
        case pauseBackup(String)
        /// Destroys and undefines the guest, with its link and channel.
        case remove(String)
        /// Marks "re-protected" on the recovery or upgrade that this backup completes (in the same
        /// step as the state change, so no status shows one without the other).
        case markReprotected
        /// The recovery or upgrade waiting for a backup ends without one; the record says why.
        case recordReprotectionFailure(String)
        /// Reports `reprotectionDue` after this many seconds.
        case retryReprotection(afterSeconds: Int)
        /// Boots the upgrade's new guest in the background (reports `upgradeGuestReady` or
        /// `upgradeGuestFailed`).
        case bootUpgradeGuest
        /// New connections go to the new guest; open ones stay pinned to the old primary.
        case beginDrain(to: String)
        /// Stops the drain; what is still pinned moves next. Marks "drain".
        case endDrain
        /// New guests are made from the upgrade's image or disk from now on. Marks "retire".
        case adoptUpgradeSource
        /// The upgrade ends here without a new version; the record says why.
        case abandonUpgrade(String)
        case reportUnprotectedFailure(FailureCause)
        case refuse(String)
        case tearDown
    }

    public private(set) var state: State

    public init(state: State = .starting) {
        self.state = state
    }

    // MARK: Reading

    /// The phase as `ftvm status`, systemd and the metrics name it.
    public var phase: PairDaemon.Phase {
        switch state {
        case .starting: .starting
        case .protected: .protected
        case .unprotected: .unprotected
        case .takingOver: .failingOver
        case .upgrading: .upgrading
        case .stopping: .stopping
        }
    }

    /// The guest the health loop judges: the serving primary, and during an upgrade the old
    /// one until the drain ends (its failure moves its connections at once). Nil during a
    /// takeover, whose successor is judged once it has taken over.
    public var watchedPrimary: String? {
        switch state {
        case .protected(let primary, _): primary
        case .unprotected(let unprotected): unprotected.primary
        case .upgrading(let upgrade) where upgrade.step != .moving: upgrade.old
        case .starting, .takingOver, .upgrading, .stopping: nil
        }
    }

    /// The paused backup whose domain the daemon reconciles with libvirt.
    public var watchedBackup: String? {
        switch state {
        case .protected(_, let backup): backup
        case .upgrading(let upgrade): upgrade.backup
        case .starting, .unprotected, .takingOver, .stopping: nil
        }
    }

    /// Why the pair is not protected, while it is unprotected.
    public var degradedReason: String? {
        if case .unprotected(let unprotected) = state { unprotected.reason } else { nil }
    }

    public var isStopping: Bool { state == .stopping }

    // MARK: Events

    public mutating func handle(_ event: Event) -> [Action] {
        if case .stopRequested = event {
            guard state != .stopping else { return [] }
            state = .stopping
            return [.tearDown]
        }
        switch state {
        case .starting: return whileStarting(event)
        case .protected(let primary, let backup): return whileProtected(primary: primary, backup: backup, event)
        case .unprotected(let unprotected): return whileUnprotected(unprotected, event)
        case .takingOver(let takeover): return whileTakingOver(takeover, event)
        case .upgrading(let upgrade): return whileUpgrading(upgrade, event)
        case .stopping: return stale(event)
        }
    }

    private mutating func whileStarting(_ event: Event) -> [Action] {
        switch event {
        case .broughtUp(let primary, let backup):
            state = .protected(primary: primary, backup: backup)
            return []
        case .adopted(let primary, let backup?):
            state = .protected(primary: primary, backup: backup)
            return []
        case .adopted(let primary, nil):
            state = .unprotected(
                Unprotected(
                    primary: primary, reason: "a restarted daemon found no paused backup; booting one",
                    reprotecting: true))
            return [.bootBackup]
        case .adoptedFailed(let failed, let backup, let cause):
            return beginTakeover(cause: cause, failed: failed, successor: backup, alreadyCutOff: false)
        case .adoptedUpgrade(let old, let backup, let new):
            state = .upgrading(Upgrade(old: old, backup: backup, new: new, step: .moving))
            return [.cutOff, .fence(old), .connect(new), .replay(into: new, pinnedOnly: false)]
        default:
            return stale(event)
        }
    }

    private mutating func whileProtected(primary: String, backup: String, _ event: Event) -> [Action] {
        switch event {
        case .failureDetected(let domain, let cause) where domain == primary:
            return beginTakeover(cause: cause, failed: primary, successor: backup, alreadyCutOff: false)
        case .failoverRequested:
            return beginTakeover(cause: .manual, failed: primary, successor: backup, alreadyCutOff: false)
        case .backupLost(let domain, let why) where domain == backup:
            state = .unprotected(
                Unprotected(primary: primary, reason: "backup \(domain) \(why); booting a new one", reprotecting: true))
            return [.remove(domain), .bootBackup]
        case .backupRunning(let domain) where domain == backup:
            return [.pauseBackup(domain)]
        case .upgradeRequested:
            state = .upgrading(Upgrade(old: primary, backup: backup, step: .booting))
            return [.bootUpgradeGuest]
        default:
            return stale(event)
        }
    }

    private mutating func whileUnprotected(_ current: Unprotected, _ event: Event) -> [Action] {
        var unprotected = current
        switch event {
        case .failureDetected(let domain, let cause) where domain == unprotected.primary:
            // Nothing to fail over to: the cause persists (a domain state, a still counter), so
            // the health loop reports it again once a backup is ready, and the takeover runs then.
            guard unprotected.failure == nil else { return [] }
            unprotected.failure = cause
            state = .unprotected(unprotected)
            return [.reportUnprotectedFailure(cause)]
        case .backupReady(let backup) where unprotected.reprotecting:
            guard let primary = unprotected.primary else {
                // No guest serves (a takeover found none to run): this one takes over at once.
                return beginTakeover(
                    cause: unprotected.failure ?? .qemuDied(reason: "no guest served"), failed: nil,
                    successor: backup, alreadyCutOff: true)
            }
            // Protected from this moment: the fenced guests kept for inspection go afterwards
            // (a QEMU takes a second or two to exit).
            state = .protected(primary: primary, backup: backup)
            return [.markReprotected] + unprotected.retiring.map(Action.remove)
        case .backupFailed(let domain, let reason) where unprotected.reprotecting:
            unprotected.reprotecting = false
            unprotected.failedAttempts += 1
            let delay = Self.retryDelaySeconds(after: unprotected.failedAttempts)
            let times = unprotected.failedAttempts == 1 ? "" : " \(unprotected.failedAttempts) times in a row"
            unprotected.reason =
                "re-protection failed\(times) (\(reason)); the pair runs unprotected; next attempt in \(delay) s"
            state = .unprotected(unprotected)
            return (domain.map { [.remove($0)] } ?? []) + [
                .recordReprotectionFailure(reason), .retryReprotection(afterSeconds: delay),
            ]
        case .reprotectionDue where !unprotected.reprotecting:
            unprotected.reprotecting = true
            let times = unprotected.failedAttempts == 1 ? "" : " \(unprotected.failedAttempts) times in a row"
            unprotected.reason = "re-protection failed\(times); booting a new backup again"
            state = .unprotected(unprotected)
            return [.bootBackup]
        case .failoverRequested:
            return [.refuse("the pair is unprotected (no paused backup): nothing to fail over to")]
        default:
            return stale(event)
        }
    }

    private mutating func whileTakingOver(_ current: Takeover, _ event: Event) -> [Action] {
        var takeover = current
        switch event {
        case .successorRunning(let domain):
            takeover.successor = domain
            takeover.step = .replaying
            state = .takingOver(takeover)
            return [.replay(into: domain, pinnedOnly: false)]
        case .successorFailed(let domain?, _) where takeover.step == .resuming && domain == takeover.successor:
            takeover.successor = nil
            takeover.step = .booting
            state = .takingOver(takeover)
            return [.remove(domain), .bootSuccessor]
        case .successorFailed(_, let reason) where takeover.step == .booting:
            state = .unprotected(
                Unprotected(
                    primary: nil, reason: "no guest could take over (\(reason)); booting a new one",
                    reprotecting: true, retiring: takeover.failed.map { [$0] } ?? [], failure: takeover.cause))
            return [.finishRecovery, .bootBackup]
        case .replaySettled where takeover.step == .replaying:
            guard let successor = takeover.successor else { return [] }
            return handOverDone(to: successor, retiring: takeover.failed.map { [$0] } ?? []) + [.finishRecovery]
                + [.bootBackup]
        case .failoverRequested, .upgradeRequested:
            return [.refuse("the pair is failing over; try again when it is protected (see `ftvm status`)")]
        default:
            return stale(event)
        }
    }

    private mutating func whileUpgrading(_ current: Upgrade, _ event: Event) -> [Action] {
        var upgrade = current
        switch event {
        case .upgradeGuestReady(let domain) where upgrade.step == .booting:
            upgrade.new = domain
            upgrade.step = .draining
            state = .upgrading(upgrade)
            return [.beginDrain(to: domain)]
        case .upgradeGuestFailed(let domain, let reason) where upgrade.step == .booting:
            let abandon = Action.abandonUpgrade(
                "the new guest did not become ready, so nothing changed (the old primary serves): \(reason)")
            if let backup = upgrade.backup {
                state = .protected(primary: upgrade.old, backup: backup)
                return (domain.map { [.remove($0)] } ?? []) + [abandon]
            }
            state = .unprotected(
                Unprotected(primary: upgrade.old, reason: "the backup was lost during an upgrade", reprotecting: true))
            return (domain.map { [.remove($0)] } ?? []) + [abandon, .bootBackup]
        case .failureDetected(let domain, let cause) where domain == upgrade.old:
            switch upgrade.step {
            case .booting:
                // The new version is not serving yet: fail over as if no upgrade were running.
                // The new guest, once ready, finds no upgrade to join and is removed.
                let abandon = Action.abandonUpgrade(
                    "the old primary failed while the new guest booted (\(cause)); the backup took over")
                guard let backup = upgrade.backup else {
                    state = .unprotected(
                        Unprotected(
                            primary: upgrade.old, reason: "the backup was lost during an upgrade", reprotecting: true,
                            failure: cause))
                    return [abandon, .reportUnprotectedFailure(cause), .bootBackup]
                }
                return [abandon]
                    + beginTakeover(cause: cause, failed: upgrade.old, successor: backup, alreadyCutOff: false)
            case .draining:
                upgrade.oldFailure = cause
                return endDrain(upgrade, fence: cause.qemuGone ? nil : upgrade.old)
            case .moving:
                return []
            }
        case .drainEnded where upgrade.step == .draining:
            return endDrain(upgrade, fence: upgrade.old)
        case .replaySettled where upgrade.step == .moving:
            guard let new = upgrade.new else { return [] }
            let retiring = [upgrade.old] + (upgrade.backup.map { [$0] } ?? [])
            return handOverDone(to: new, retiring: []) + retiring.map(Action.remove) + [
                .adoptUpgradeSource, .bootBackup,
            ]
        case .backupLost(let domain, _) where domain == upgrade.backup:
            upgrade.backup = nil
            state = .upgrading(upgrade)
            return [.remove(domain)]
        case .backupRunning(let domain) where domain == upgrade.backup:
            return [.pauseBackup(domain)]
        case .failoverRequested, .upgradeRequested:
            return [.refuse("the pair is upgrading; try again when it is protected (see `ftvm status`)")]
        default:
            return stale(event)
        }
    }

    // MARK: Shared sequences

    /// Fence → switch → resume: the first half of every takeover.
    private mutating func beginTakeover(
        cause: FailureCause, failed: String?, successor: String?, alreadyCutOff: Bool
    )
        -> [Action]
    {
        state = .takingOver(
            Takeover(cause: cause, failed: failed, successor: successor, step: successor == nil ? .booting : .resuming))
        // Cut off first: from here nothing the suspect sends reaches a client (invariant 2).
        var actions: [Action] = alreadyCutOff ? [] : [.cutOff]
        actions.append(.beginRecovery(cause: cause, failed: failed, successor: successor))
        // A guest whose QEMU is gone has nothing to stop, and libvirt is busy cleaning up after
        // it (a state query would wait over a second).
        actions.append(.fence(failed.flatMap { cause.qemuGone ? nil : $0 }))
        if let successor {
            actions += [.connect(successor), .resume(successor)]
        } else {
            actions.append(.bootSuccessor)
        }
        return actions
    }

    /// Ends an upgrade's drain: the old primary is cut off and fenced, and what it still
    /// served is replayed into the new guest.
    private mutating func endDrain(_ current: Upgrade, fence: String?) -> [Action] {
        var upgrade = current
        upgrade.step = .moving
        state = .upgrading(upgrade)
        guard let new = upgrade.new else { return [] }
        return [.endDrain, .fence(fence), .replay(into: new, pinnedOnly: true)]
    }

    /// The hand-over's second half, once the replay settled: the new guest is the primary, the
    /// old one retired (after the first packet, never before), and a backup is booted.
    private mutating func handOverDone(to primary: String, retiring: [String]) -> [Action] {
        state = .unprotected(
            Unprotected(
                primary: primary, reason: "\(primary) took over; booting a new backup", reprotecting: true,
                retiring: retiring))
        return [.setRole(.primary, primary)] + retiring.map { .setRole(.retired, $0) }
    }

    /// An event that no longer applies (a guest that was replaced meanwhile, a report that
    /// arrives after a teardown began): guests it names that the pair no longer uses are removed.
    private func stale(_ event: Event) -> [Action] {
        switch event {
        case .backupReady(let domain), .backupFailed(let domain?, _), .upgradeGuestReady(let domain),
            .upgradeGuestFailed(let domain?, _):
            [.remove(domain)]
        case .failoverRequested:
            [.refuse("the pair is \(phase.rawValue): a failover needs a paused backup (see `ftvm status`)")]
        case .upgradeRequested:
            [.refuse("the pair is \(phase.rawValue); upgrade when it is protected (see `ftvm status`)")]
        default: []
        }
    }
}

extension FailureCause {
    /// The guest's QEMU process is gone: there is nothing to pause or destroy.
    var qemuGone: Bool { if case .qemuDied = self { true } else { false } }
}
