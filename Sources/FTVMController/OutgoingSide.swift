import FTVMLog
import FTVMWire
import Synchronization

/// The south side's half for relay servers (docs/relay-servers.md): connections the guest opens
/// itself, to an end server in the clients' network (a reverse proxy fetching from its back
/// end), are logged like client connections with the roles mirrored. The record's "client" is
/// the end server: its ISN and SYN/ACK options, every byte it sends (logged *before* the guest
/// can see it: output commit on this side too) and what it acknowledged. Its "server" is the
/// guest: its ISN and SYN options, and the running checksum of what it sent, which a replay's
/// regenerated requests are checked against.
///
/// This type holds what the log cannot yet: a guest's SYN until the end server answers it (the
/// record opens with the end server's ISN, like a client connection opens with the client's).
/// The rest of the path is the client side's own (`SouthSide`), and the replay is the
/// splicer's (`Splicer+Outgoing.swift`).
///
/// Relay thread only. The table of waiting SYNs is sized once; a SYN that finds it full is not
/// logged (its connection passes unprotected, counted).
final class OutgoingSide: @unchecked Sendable {
    public struct Counters: Sendable, Codable, Equatable {
        /// Guest SYNs to an end server, and connections logged once the end server answered.
        public var guestSYNs: UInt64
        public var logged: UInt64
        /// Connections passed unlogged: the SYN table or the log had no room.
        public var unlogged: UInt64
    }

    /// A guest's SYN waiting for the end server's SYN/ACK.
    private struct PendingSYN {
        var isn: UInt32
        var options: SYNOptions
        var tsval: UInt32?
        var seenAt: UInt64
    }

    /// SYNs waiting at once, and how long one waits (Linux gives a SYN up after about 127 s).
    static let pendingLimit = 1024
    static let pendingNanos: UInt64 = 130_000_000_000

    private let log: ConnectionLog
    private var pending: [FlowKey: PendingSYN] = [:]
    private var lastSweep: UInt64 = 0
    private let guestSYNs = Atomic<UInt64>(0)
    private let logged = Atomic<UInt64>(0)
    private let unlogged = Atomic<UInt64>(0)

    init(log: ConnectionLog) {
        self.log = log
        pending.reserveCapacity(Self.pendingLimit)
    }

    var counters: Counters {
        Counters(
            guestSYNs: guestSYNs.load(ordering: .relaxed), logged: logged.load(ordering: .relaxed),
            unlogged: unlogged.load(ordering: .relaxed))
    }

    /// The guest sent a SYN (`key`: the end server as the client, the guest's port as the
    /// server's); it is forwarded, and remembered for the answer.
    func guestOpens(_ segment: TCPSegmentView, key: FlowKey, now: UInt64) {
        guestSYNs.add(1, ordering: .relaxed)
        guard pending[key]?.isn != segment.sequenceNumber.rawValue else { return }  // a retransmission
        guard pending.count < Self.pendingLimit || pending[key] != nil else {
            unlogged.add(1, ordering: .relaxed)
            return
        }
        pending[key] = PendingSYN(
            isn: segment.sequenceNumber.rawValue, options: SYNOptions(segment.options),
            tsval: segment.options.timestamps?.value, seenAt: now)
    }

    /// The end server's SYN/ACK for a SYN the guest sent: logs the connection (before the guest
    /// sees the SYN/ACK) and returns its record; nil when it answers no SYN seen here.
    func endServerAnswers(_ segment: TCPSegmentView, key: FlowKey) -> Slot? {
        guard let syn = pending[key], segment.acknowledgmentNumber.rawValue == syn.isn &+ 1 else { return nil }
        pending[key] = nil
        guard
            let slot = log.open(
                key: key, clientISN: segment.sequenceNumber.rawValue, options: SYNOptions(segment.options),
                guestInitiated: true)
        else {
            unlogged.add(1, ordering: .relaxed)
            return nil
        }
        log.setServerHandshake(slot, serverISN: syn.isn, options: syn.options)
        if let tsval = syn.tsval { log.noteTimestamps(slot, fromClient: false, tsval: tsval, tsecr: 0) }
        if let stamps = segment.options.timestamps {
            log.noteTimestamps(slot, fromClient: true, tsval: stamps.value, tsecr: stamps.echoReply)
        }
        logged.add(1, ordering: .relaxed)
        return slot
    }

    /// Forgets SYNs no end server answered. Cheap enough to call every loop turn; it scans once
    /// a second.
    func sweep(now: UInt64) {
        guard now &- lastSweep >= 1_000_000_000, !pending.isEmpty else { return }
        lastSweep = now
        pending = pending.filter { now &- $0.value.seenAt < Self.pendingNanos }
    }
}
