import FTVMVirt
import XCTest

@testable import FTVMController

/// The pair's lifecycle without guests: every event in every state, as a table of rows, and the
/// whole takeover and upgrade sequences fed through the machine as the daemon would feed them.
final class LifecycleTests: XCTestCase {
    typealias L = PairLifecycle

    // MARK: States the table starts from

    static let protected = L.State.protected(primary: "p", backup: "b")
    static let reprotecting = L.State.unprotected(
        L.Unprotected(primary: "p", reason: "p took over; booting a new backup", reprotecting: true, retiring: ["old"]))
    static let degraded = L.State.unprotected(
        L.Unprotected(
            primary: "p", reason: "re-protection failed (x); the pair runs unprotected; next attempt in 5 s",
            reprotecting: false, failedAttempts: 1))
    static let resuming = L.State.takingOver(
        L.Takeover(cause: .kernelPanic, failed: "p", successor: "b", step: .resuming))
    static let bootingSuccessor = L.State.takingOver(L.Takeover(cause: .kernelPanic, failed: "p", step: .booting))
    static let replaying = L.State.takingOver(
        L.Takeover(cause: .kernelPanic, failed: "p", successor: "b", step: .replaying))
    static let upgradeBooting = L.State.upgrading(L.Upgrade(old: "p", backup: "b", step: .booting))
    static let draining = L.State.upgrading(L.Upgrade(old: "p", backup: "b", new: "n", step: .draining))
    static let moving = L.State.upgrading(L.Upgrade(old: "p", backup: "b", new: "n", step: .moving))

    static let faults: [FailureCause] = [
        .kernelPanic, .heartbeatStalled(millis: 500), .dataPathStalled(millis: 3000), .qemuDied(reason: "gone"),
        .serviceFailed(name: "demo", exit: -9), .serviceHung(name: "demo"), .agentFailed,
        .pausedOutside(how: "virsh suspend"),
    ]

    struct Row {
        var name: String
        var from: L.State
        var event: L.Event
        var to: L.State
        var actions: [L.Action]
        var line: UInt = #line
    }

    /// The hand-over that starts every takeover from a protected pair, for `cause`.
    static func takeover(_ cause: FailureCause, from state: L.State = protected) -> Row {
        Row(
            name: "\(cause) while \(state)", from: state, event: .failureDetected(domain: "p", cause: cause),
            to: .takingOver(L.Takeover(cause: cause, failed: "p", successor: "b", step: .resuming)),
            actions: [
                .cutOff, .beginRecovery(cause: cause, failed: "p", successor: "b"),
                .fence(cause.qemuGone ? nil : "p"), .connect("b"), .resume("b"),
            ])
    }

    static var rows: [Row] {
        var rows: [Row] = []
        for cause in faults {
            // Protected: every fault of the primary starts a takeover.
            rows.append(takeover(cause))
            // Unprotected (re-protecting, or after a failed re-protection): reported once, and
            // the takeover waits for a backup.
            for state in [reprotecting, degraded] {
                guard case .unprotected(var seen) = state else { continue }
                seen.failure = cause
                rows.append(
                    Row(
                        name: "\(cause) while unprotected", from: state,
                        event: .failureDetected(domain: "p", cause: cause), to: .unprotected(seen),
                        actions: [.reportUnprotectedFailure(cause)]))
                rows.append(
                    Row(
                        name: "\(cause) reported again while unprotected", from: .unprotected(seen),
                        event: .failureDetected(domain: "p", cause: cause), to: .unprotected(seen), actions: []))
            }
            // Taking over: the failed guest's further symptoms change nothing.
            for state in [resuming, bootingSuccessor, replaying] {
                rows.append(
                    Row(
                        name: "\(cause) during a takeover", from: state,
                        event: .failureDetected(domain: "p", cause: cause), to: state, actions: []))
            }
            // An upgrade booting its new guest: the backup takes over as without an upgrade.
            var duringBoot = takeover(cause, from: upgradeBooting)
            duringBoot.actions.insert(
                .abandonUpgrade("the old primary failed while the new guest booted (\(cause)); the backup took over"),
                at: 0)
            rows.append(duringBoot)
            // An upgrade's drain: what the old primary still serves moves to the new guest now.
            rows.append(
                Row(
                    name: "\(cause) during the drain", from: draining,
                    event: .failureDetected(domain: "p", cause: cause),
                    to: .upgrading(L.Upgrade(old: "p", backup: "b", new: "n", step: .moving, oldFailure: cause)),
                    actions: [.endDrain, .fence(cause.qemuGone ? nil : "p"), .replay(into: "n", pinnedOnly: true)]))
            rows.append(
                Row(
                    name: "\(cause) while moving", from: moving, event: .failureDetected(domain: "p", cause: cause),
                    to: moving, actions: []))
            // A report about a guest that is not the primary (any more) is stale.
            rows.append(
                Row(
                    name: "\(cause) of the backup", from: protected, event: .failureDetected(domain: "b", cause: cause),
                    to: protected, actions: []))
        }
        rows += [
            // Bring-up and adoption by a restarted daemon, in every state it can find.
            Row(
                name: "brought up", from: .starting, event: .broughtUp(primary: "p", backup: "b"), to: protected,
                actions: []),
            Row(
                name: "adopted protected", from: .starting, event: .adopted(primary: "p", backup: "b"), to: protected,
                actions: []),
            Row(
                name: "adopted without a backup", from: .starting, event: .adopted(primary: "p", backup: nil),
                to: .unprotected(
                    L.Unprotected(
                        primary: "p", reason: "a restarted daemon found no paused backup; booting one",
                        reprotecting: true)),
                actions: [.bootBackup]),
            Row(
                name: "adopted mid-takeover", from: .starting,
                event: .adoptedFailed(failed: "p", backup: "b", cause: .kernelPanic),
                to: resuming,
                actions: [
                    .cutOff, .beginRecovery(cause: .kernelPanic, failed: "p", successor: "b"), .fence("p"),
                    .connect("b"), .resume("b"),
                ]),
            Row(
                name: "adopted with no guest to take over", from: .starting,
                event: .adoptedFailed(failed: "p", backup: nil, cause: .qemuDied(reason: "no primary domain left")),
                to: .takingOver(
                    L.Takeover(cause: .qemuDied(reason: "no primary domain left"), failed: "p", step: .booting)),
                actions: [
                    .cutOff,
                    .beginRecovery(cause: .qemuDied(reason: "no primary domain left"), failed: "p", successor: nil),
                    .fence(nil), .bootSuccessor,
                ]),
            Row(
                name: "adopted mid-upgrade", from: .starting, event: .adoptedUpgrade(old: "p", backup: "b", new: "n"),
                to: moving, actions: [.cutOff, .fence("p"), .connect("n"), .replay(into: "n", pinnedOnly: false)]),
            // Operator actions on the backup.
            Row(
                name: "backup destroyed", from: protected, event: .backupLost(domain: "b", why: "was shut off"),
                to: .unprotected(
                    L.Unprotected(primary: "p", reason: "backup b was shut off; booting a new one", reprotecting: true)),
                actions: [.remove("b"), .bootBackup]),
            Row(
                name: "backup resumed by hand", from: protected, event: .backupRunning("b"), to: protected,
                actions: [.pauseBackup("b")]),
            Row(
                name: "backup destroyed during an upgrade", from: draining,
                event: .backupLost(domain: "b", why: "gone"),
                to: .upgrading(L.Upgrade(old: "p", backup: nil, new: "n", step: .draining)), actions: [.remove("b")]),
            Row(
                name: "backup resumed during an upgrade", from: upgradeBooting, event: .backupRunning("b"),
                to: upgradeBooting, actions: [.pauseBackup("b")]),
            Row(
                name: "a replaced backup's report is stale", from: reprotecting,
                event: .backupLost(domain: "b", why: "gone"), to: reprotecting, actions: []),
            // Re-protection.
            Row(
                name: "backup ready", from: reprotecting, event: .backupReady("b2"),
                to: .protected(primary: "p", backup: "b2"), actions: [.markReprotected, .remove("old")]),
            // A backup that did not become ready goes, and another is booted after a wait
            // that doubles with each failure in a row.
            Row(
                name: "backup failed", from: reprotecting, event: .backupFailed(domain: "b2", reason: "x"),
                to: .unprotected(
                    L.Unprotected(
                        primary: "p",
                        reason: "re-protection failed (x); the pair runs unprotected; next attempt in 5 s",
                        reprotecting: false, retiring: ["old"], failedAttempts: 1)),
                actions: [.remove("b2"), .recordReprotectionFailure("x"), .retryReprotection(afterSeconds: 5)]),
            Row(
                name: "backup never defined", from: reprotecting, event: .backupFailed(domain: nil, reason: "x"),
                to: .unprotected(
                    L.Unprotected(
                        primary: "p",
                        reason: "re-protection failed (x); the pair runs unprotected; next attempt in 5 s",
                        reprotecting: false, retiring: ["old"], failedAttempts: 1)),
                actions: [.recordReprotectionFailure("x"), .retryReprotection(afterSeconds: 5)]),
            Row(
                name: "re-protection tried again", from: degraded, event: .reprotectionDue,
                to: .unprotected(
                    L.Unprotected(
                        primary: "p", reason: "re-protection failed; booting a new backup again", reprotecting: true,
                        failedAttempts: 1)),
                actions: [.bootBackup]),
            Row(
                name: "backup failed again",
                from: .unprotected(
                    L.Unprotected(
                        primary: "p", reason: "r", reprotecting: true, failure: .agentFailed, failedAttempts: 3)),
                event: .backupFailed(domain: "b5", reason: "y"),
                to: .unprotected(
                    L.Unprotected(
                        primary: "p",
                        reason:
                            "re-protection failed 4 times in a row (y); the pair runs unprotected; next attempt in 40 s",
                        reprotecting: false, failure: .agentFailed, failedAttempts: 4)),
                actions: [.remove("b5"), .recordReprotectionFailure("y"), .retryReprotection(afterSeconds: 40)]),
            Row(
                name: "a retry while a backup boots is stale", from: reprotecting, event: .reprotectionDue,
                to: reprotecting, actions: []),
            Row(
                name: "a retry once protected is stale", from: protected, event: .reprotectionDue, to: protected,
                actions: []),
            Row(
                name: "a retry after a teardown is stale", from: .stopping, event: .reprotectionDue, to: .stopping,
                actions: []),
            Row(
                name: "a failed backup's report once protected", from: protected,
                event: .backupFailed(domain: "b9", reason: "x"), to: protected, actions: [.remove("b9")]),
            Row(
                name: "a backup that boots after a teardown", from: .stopping, event: .backupReady("b2"),
                to: .stopping, actions: [.remove("b2")]),
            // Takeover steps.
            Row(
                name: "successor runs", from: resuming, event: .successorRunning("b"), to: replaying,
                actions: [.replay(into: "b", pinnedOnly: false)]),
            Row(
                name: "backup cannot resume", from: resuming, event: .successorFailed(domain: "b", reason: "x"),
                to: bootingSuccessor, actions: [.remove("b"), .bootSuccessor]),
            Row(
                name: "no guest can take over", from: bootingSuccessor,
                event: .successorFailed(domain: nil, reason: "x"),
                to: .unprotected(
                    L.Unprotected(
                        primary: nil, reason: "no guest could take over (x); booting a new one", reprotecting: true,
                        retiring: ["p"], failure: .kernelPanic)),
                actions: [.finishRecovery, .bootBackup]),
            Row(
                name: "replay settled", from: replaying, event: .replaySettled,
                to: .unprotected(
                    L.Unprotected(
                        primary: "b", reason: "b took over; booting a new backup", reprotecting: true,
                        retiring: ["p"])),
                actions: [.setRole(.primary, "b"), .setRole(.retired, "p"), .finishRecovery, .bootBackup]),
            // Planned failover.
            Row(
                name: "failover", from: protected, event: .failoverRequested,
                to: .takingOver(L.Takeover(cause: .manual, failed: "p", successor: "b", step: .resuming)),
                actions: [
                    .cutOff, .beginRecovery(cause: .manual, failed: "p", successor: "b"), .fence("p"), .connect("b"),
                    .resume("b"),
                ]),
            Row(
                name: "failover while unprotected", from: reprotecting, event: .failoverRequested, to: reprotecting,
                actions: [.refuse("the pair is unprotected (no paused backup): nothing to fail over to")]),
            // Upgrade steps.
            Row(
                name: "upgrade", from: protected, event: .upgradeRequested, to: upgradeBooting,
                actions: [.bootUpgradeGuest]),
            Row(
                name: "upgrade while unprotected", from: reprotecting, event: .upgradeRequested, to: reprotecting,
                actions: [.refuse("the pair is unprotected; upgrade when it is protected (see `ftvm status`)")]),
            Row(
                name: "upgrade during an upgrade", from: draining, event: .upgradeRequested, to: draining,
                actions: [.refuse("the pair is upgrading; try again when it is protected (see `ftvm status`)")]),
            Row(
                name: "new guest ready", from: upgradeBooting, event: .upgradeGuestReady("n"), to: draining,
                actions: [.beginDrain(to: "n")]),
            Row(
                name: "new guest failed", from: upgradeBooting, event: .upgradeGuestFailed(domain: "n", reason: "x"),
                to: protected,
                actions: [
                    .remove("n"),
                    .abandonUpgrade(
                        "the new guest did not become ready, so nothing changed (the old primary serves): x"),
                ]),
            Row(
                name: "new guest ready after the upgrade was abandoned", from: replaying,
                event: .upgradeGuestReady("n"), to: replaying, actions: [.remove("n")]),
            Row(
                name: "new guest failed after the upgrade was abandoned", from: replaying,
                event: .upgradeGuestFailed(domain: "n", reason: "x"), to: replaying, actions: [.remove("n")]),
            Row(
                name: "drain ended", from: draining, event: .drainEnded, to: moving,
                actions: [.endDrain, .fence("p"), .replay(into: "n", pinnedOnly: true)]),
            Row(name: "drain ended twice", from: moving, event: .drainEnded, to: moving, actions: []),
            Row(
                name: "moved", from: moving, event: .replaySettled,
                to: .unprotected(
                    L.Unprotected(primary: "n", reason: "n took over; booting a new backup", reprotecting: true)),
                actions: [.setRole(.primary, "n"), .remove("p"), .remove("b"), .adoptUpgradeSource, .bootBackup]),
            // Teardown from anywhere, once.
            Row(name: "stop", from: draining, event: .stopRequested, to: .stopping, actions: [.tearDown]),
            Row(name: "stop twice", from: .stopping, event: .stopRequested, to: .stopping, actions: []),
        ]
        return rows
    }

    func testEveryRow() {
        for row in Self.rows {
            var machine = L(state: row.from)
            let actions = machine.handle(row.event)
            XCTAssertEqual(machine.state, row.to, "\(row.name): state", line: row.line)
            XCTAssertEqual(actions, row.actions, "\(row.name): actions", line: row.line)
        }
    }

    /// Every event in every state: a stop always ends in `stopping` with one teardown, and no
    /// event but a failure, a failover or an adoption ever fences a guest.
    func testEveryEventInEveryState() {
        let states: [L.State] = [
            .starting, Self.protected, Self.reprotecting, Self.degraded, Self.resuming, Self.bootingSuccessor,
            Self.replaying, Self.upgradeBooting, Self.draining, Self.moving, .stopping,
        ]
        let events: [L.Event] =
            Self.faults.flatMap {
                [L.Event.failureDetected(domain: "p", cause: $0), .failureDetected(domain: "n", cause: $0)]
            }
            + [
                .broughtUp(primary: "p", backup: "b"), .adopted(primary: "p", backup: "b"),
                .adoptedFailed(failed: "p", backup: "b", cause: .kernelPanic),
                .adoptedUpgrade(old: "p", backup: "b", new: "n"), .failoverRequested,
                .successorRunning("b"), .successorFailed(domain: "b", reason: "x"),
                .successorFailed(domain: nil, reason: "x"), .replaySettled, .backupLost(domain: "b", why: "x"),
                .backupRunning("b"), .backupReady("b2"), .backupFailed(domain: "b2", reason: "x"),
                .backupFailed(domain: nil, reason: "x"), .reprotectionDue, .upgradeRequested,
                .upgradeGuestReady("n"), .upgradeGuestFailed(domain: "n", reason: "x"), .drainEnded,
            ]
        for state in states {
            for event in events {
                var machine = L(state: state)
                let actions = machine.handle(event)
                let fences = actions.contains { if case .fence = $0 { true } else { false } }
                switch event {
                case .failureDetected, .failoverRequested, .adoptedFailed, .adoptedUpgrade, .drainEnded: break
                default: XCTAssertFalse(fences, "\(event) in \(state) fenced: \(actions)")
                }
                var stopping = machine
                XCTAssertEqual(stopping.handle(.stopRequested), machine.isStopping ? [] : [.tearDown])
                XCTAssertEqual(stopping.state, .stopping)
            }
        }
    }

    /// Feeds events until the machine asks for nothing that reports one, answering each action
    /// as the daemon would when everything works; returns every action in order.
    static func run(_ machine: inout L, _ first: L.Event, answer: (L.Action) -> L.Event?) -> [L.Action] {
        var queue = [first]
        var all: [L.Action] = []
        while !queue.isEmpty {
            let actions = machine.handle(queue.removeFirst())
            all += actions
            queue += actions.compactMap(answer)
        }
        return all
    }

    static func happy(_ action: L.Action) -> L.Event? {
        switch action {
        case .resume(let domain): .successorRunning(domain)
        case .replay: .replaySettled
        case .bootBackup: .backupReady("b2")
        case .bootUpgradeGuest: .upgradeGuestReady("n")
        case .bootSuccessor: .successorRunning("fresh")
        default: nil
        }
    }

    /// The takeover's order (issue: a qemu-kill's fence waited on a libvirt metadata write):
    /// cut off, fence, switch, resume, replay, and only then roles and retirement.
    func testTakeoverOrder() {
        for cause in Self.faults {
            var machine = L(state: Self.protected)
            let actions = Self.run(&machine, .failureDetected(domain: "p", cause: cause), answer: Self.happy)
            XCTAssertEqual(
                actions,
                [
                    .cutOff, .beginRecovery(cause: cause, failed: "p", successor: "b"),
                    .fence(cause.qemuGone ? nil : "p"), .connect("b"), .resume("b"),
                    .replay(into: "b", pinnedOnly: false), .setRole(.primary, "b"), .setRole(.retired, "p"),
                    .finishRecovery, .bootBackup, .markReprotected, .remove("p"),
                ], "\(cause)")
            XCTAssertEqual(machine.state, .protected(primary: "b", backup: "b2"))
        }
    }

    func testUpgradeSharesTheHandOver() {
        var machine = L(state: Self.protected)
        var actions = Self.run(&machine, .upgradeRequested, answer: Self.happy)
        XCTAssertEqual(actions, [.bootUpgradeGuest, .beginDrain(to: "n")])
        XCTAssertEqual(machine.watchedPrimary, "p", "the old primary is judged during the drain")
        XCTAssertEqual(machine.watchedBackup, "b", "the old backup is reconciled during the drain")
        actions = Self.run(&machine, .drainEnded, answer: Self.happy)
        XCTAssertEqual(
            actions,
            [
                .endDrain, .fence("p"), .replay(into: "n", pinnedOnly: true), .setRole(.primary, "n"), .remove("p"),
                .remove("b"), .adoptUpgradeSource, .bootBackup, .markReprotected,
            ])
        XCTAssertEqual(machine.state, .protected(primary: "n", backup: "b2"))
    }

    /// A daemon killed mid-upgrade: the next one finishes it, every connection moved by replay.
    func testAnAdoptedUpgradeIsFinished() {
        var machine = L()
        let actions = Self.run(&machine, .adoptedUpgrade(old: "p", backup: "b", new: "n"), answer: Self.happy)
        XCTAssertEqual(
            actions,
            [
                .cutOff, .fence("p"), .connect("n"), .replay(into: "n", pinnedOnly: false), .setRole(.primary, "n"),
                .remove("p"), .remove("b"), .adoptUpgradeSource, .bootBackup, .markReprotected,
            ])
        XCTAssertEqual(machine.state, .protected(primary: "n", backup: "b2"))
    }

    func testAFaultDuringTheDrainMovesAtOnceAndTheDrainsEndIsStale() {
        var machine = L(state: Self.draining)
        let actions = Self.run(
            &machine, .failureDetected(domain: "p", cause: .kernelPanic), answer: Self.happy)
        XCTAssertEqual(actions.prefix(3), [.endDrain, .fence("p"), .replay(into: "n", pinnedOnly: true)])
        XCTAssertEqual(machine.state, .protected(primary: "n", backup: "b2"))
        XCTAssertEqual(machine.handle(.drainEnded), [])
    }

    func testABackupThatCannotResumeIsReplacedByAFreshGuest() {
        var machine = L(state: Self.protected)
        let actions = Self.run(&machine, .failureDetected(domain: "p", cause: .kernelPanic)) { action in
            if case .resume = action { return .successorFailed(domain: "b", reason: "x") }
            return Self.happy(action)
        }
        XCTAssertEqual(
            Array(actions.dropFirst(5)),
            [
                .remove("b"), .bootSuccessor, .replay(into: "fresh", pinnedOnly: false), .setRole(.primary, "fresh"),
                .setRole(.retired, "p"), .finishRecovery, .bootBackup, .markReprotected, .remove("p"),
            ])
    }

    /// No guest could take over: the pair says so, and the backup booted next takes over at once.
    func testWithNoGuestTheNextBackupTakesOver() {
        var machine = L(state: Self.bootingSuccessor)
        XCTAssertEqual(machine.handle(.successorFailed(domain: nil, reason: "x")), [.finishRecovery, .bootBackup])
        XCTAssertNil(machine.watchedPrimary)
        XCTAssertEqual(machine.phase, .unprotected)
        XCTAssertEqual(
            machine.handle(.backupReady("b2")),
            [
                .beginRecovery(cause: .kernelPanic, failed: nil, successor: "b2"), .fence(nil), .connect("b2"),
                .resume("b2"),
            ]
        )
    }

    /// A pair whose backups keep failing to boot keeps trying, ever less often, and the failure
    /// its primary had meanwhile takes the first backup that is ready (seen: a backup that never
    /// reported ready left the pair unprotected, and its half-booted guest running, for good).
    func testReprotectionIsTriedAgainUntilABackupIsReady() {
        XCTAssertEqual((0...7).map(L.retryDelaySeconds(after:)), [5, 5, 10, 20, 40, 60, 60, 60])
        var machine = L(state: Self.reprotecting)
        XCTAssertEqual(machine.handle(.failureDetected(domain: "p", cause: .serviceHung(name: "demo"))).count, 1)
        var delays: [Int] = []
        for attempt in 1...6 {
            let actions = machine.handle(.backupFailed(domain: "b\(attempt)", reason: "not ready"))
            XCTAssertEqual(actions.first, .remove("b\(attempt)"), "the half-made guest goes")
            guard case .retryReprotection(let seconds)? = actions.last else { return XCTFail("\(actions)") }
            delays.append(seconds)
            XCTAssertEqual(machine.phase, .unprotected)
            XCTAssertEqual(machine.handle(.reprotectionDue), [.bootBackup])
            XCTAssertEqual(machine.handle(.reprotectionDue), [], "one boot at a time")
        }
        XCTAssertEqual(delays, [5, 10, 20, 40, 60, 60])
        XCTAssertEqual(
            machine.handle(.backupReady("b7")),
            [.markReprotected, .remove("old")], "protected, the fenced guest removed")
        XCTAssertEqual(machine.state, .protected(primary: "p", backup: "b7"))
        // The primary's failure persists: the health loop reports it again, and it takes over.
        XCTAssertEqual(
            machine.handle(.failureDetected(domain: "p", cause: .serviceHung(name: "demo"))).last, .resume("b7"))
    }

    func testPhaseAndWatchedGuests() {
        let expected: [(L.State, PairDaemon.Phase, String?, String?)] = [
            (.starting, .starting, nil, nil), (Self.protected, .protected, "p", "b"),
            (Self.reprotecting, .unprotected, "p", nil), (Self.resuming, .failingOver, nil, nil),
            (Self.upgradeBooting, .upgrading, "p", "b"), (Self.draining, .upgrading, "p", "b"),
            (Self.moving, .upgrading, nil, "b"), (.stopping, .stopping, nil, nil),
        ]
        for (state, phase, primary, backup) in expected {
            let machine = L(state: state)
            XCTAssertEqual(machine.phase, phase, "\(state)")
            XCTAssertEqual(machine.watchedPrimary, primary, "\(state)")
            XCTAssertEqual(machine.watchedBackup, backup, "\(state)")
        }
    }
}
