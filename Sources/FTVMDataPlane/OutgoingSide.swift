import FTVMHTTP
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
public final class OutgoingSide: @unchecked Sendable {
    public struct Counters: Sendable, Codable, Equatable {
        /// Guest SYNs to an end server, and connections logged once the end server answered.
        public var guestSYNs: UInt64
        public var logged: UInt64
        /// Connections passed unlogged: the SYN table or the log had no room.
        public var unlogged: UInt64
        /// Connections whose HTTP framing stopped being followed (no more trims), and why.
        public var framingStopped: [String: UInt64]
        /// Ended connections freed at once because the log's share for kept ones was full (a
        /// replay may then send their request again); nil from an older daemon.
        public var endedNotKept: UInt64?
    }

    /// A guest's SYN waiting for the end server's SYN/ACK.
    private struct PendingSYN {
        var isn: UInt32
        var options: SYNOptions
        var tsval: UInt32?
        var seenAt: UInt64
        /// Sent by the guest an upgrade drains: the connection is pinned to it.
        var fromDrainingGuest: Bool
    }

    /// SYNs waiting at once, and how long one waits (Linux gives a SYN up after about 127 s).
    static let pendingLimit = 1024
    static let pendingNanos: UInt64 = 130_000_000_000

    /// An exchange boundary of a guest-initiated connection, with the client exchange count when
    /// its exchange completed (SouthSide+Outgoing.swift).
    private struct Boundary {
        var start = ReplayStart(clientOffset: 0, serverOffset: 0, serverCRC: 0)
        var stamp: UInt64 = 0
    }

    /// Boundaries waiting per slot, oldest first; the newest replaces the last when full (it
    /// subsumes it, with a younger stamp: later, never wrongly, trimmed).
    private struct Boundaries {
        static let capacity = 4
        var serial: UInt64 = 0
        var entries = InlineArray<4, Boundary>(repeating: Boundary())
        var count = 0
    }

    private let log: ConnectionLog
    private var pending: [FlowKey: PendingSYN] = [:]
    private var boundaries: [Boundaries]
    private var heads: [RequestHeads]
    private var slotsWithBoundaries = 0
    /// Client exchanges begun so far (the stamps).
    private var clientExchanges: UInt64 = 0
    /// Why outgoing connections' framing stopped being followed (rare: a lock is fine).
    private let stops = Mutex<[String: UInt64]>([:])
    private var lastSweep: UInt64 = 0
    private let guestSYNs = Atomic<UInt64>(0)
    private let logged = Atomic<UInt64>(0)
    private let unlogged = Atomic<UInt64>(0)
    private let notKept = Atomic<UInt64>(0)

    init(log: ConnectionLog) {
        self.log = log
        pending.reserveCapacity(Self.pendingLimit)
        boundaries = Array(repeating: Boundaries(), count: log.usage.slotCount)
        heads = Array(repeating: RequestHeads(), count: log.usage.slotCount)
    }

    var counters: Counters {
        Counters(
            guestSYNs: guestSYNs.load(ordering: .relaxed), logged: logged.load(ordering: .relaxed),
            unlogged: unlogged.load(ordering: .relaxed), framingStopped: stops.withLock { $0 },
            endedNotKept: notKept.load(ordering: .relaxed))
    }

    /// The guest sent a SYN (`key`: the end server as the client, the guest's port as the
    /// server's); it is forwarded, and remembered for the answer.
    func guestOpens(_ segment: TCPSegmentView, key: FlowKey, now: UInt64, fromDrainingGuest: Bool = false) {
        guestSYNs.add(1, ordering: .relaxed)
        guard pending[key]?.isn != segment.sequenceNumber.rawValue else { return }  // a retransmission
        guard pending.count < Self.pendingLimit || pending[key] != nil else {
            unlogged.add(1, ordering: .relaxed)
            return
        }
        pending[key] = PendingSYN(
            isn: segment.sequenceNumber.rawValue, options: SYNOptions(segment.options),
            tsval: segment.options.timestamps?.value, seenAt: now, fromDrainingGuest: fromDrainingGuest)
    }

    /// The end server's SYN/ACK for a SYN the guest sent: logs the connection (before the guest
    /// sees the SYN/ACK) and returns its record, and whether the guest an upgrade drains sent
    /// the SYN; nil when it answers no SYN seen here.
    func endServerAnswers(_ segment: TCPSegmentView, key: FlowKey) -> (slot: Slot, fromDrainingGuest: Bool)? {
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
        heads[slot.index] = RequestHeads(serial: slot.serial)
        log.setServerHandshake(slot, serverISN: syn.isn, options: syn.options)
        if let tsval = syn.tsval { log.noteTimestamps(slot, fromClient: false, tsval: tsval, tsecr: 0) }
        if let stamps = segment.options.timestamps {
            log.noteTimestamps(slot, fromClient: true, tsval: stamps.value, tsecr: stamps.echoReply)
        }
        logged.add(1, ordering: .relaxed)
        return (slot, syn.fromDrainingGuest)
    }

    // MARK: Bounding (SouthSide+Outgoing.swift)

    /// A client exchange begins: its stamp.
    func beginClientExchange() -> UInt64 {
        clientExchanges += 1
        return clientExchanges
    }

    /// The stamp of the latest client exchange begun (what an exchange that completes now gets).
    var currentStamp: UInt64 { max(clientExchanges, 1) }

    /// A relay server's ended connection freed at once: the log's share for kept ones was full.
    func noteNotKept() { notKept.add(1, ordering: .relaxed) }

    var hasBoundaries: Bool { slotsWithBoundaries > 0 }

    /// An exchange of `slot` completed at `start`; it is stamped with the client exchanges so far.
    func offer(_ slot: Slot, _ start: ReplayStart) {
        var list = boundaries[slot.index]
        if list.serial != slot.serial {
            if list.count > 0 { slotsWithBoundaries -= 1 }
            list = Boundaries(serial: slot.serial)
        }
        if heads[slot.index].serial == slot.serial { heads[slot.index].begin(at: start.serverOffset) }
        log.noteBoundary(slot, start)  // (a restarted daemon's only ones: `boundaries`)
        let boundary = Boundary(start: start, stamp: clientExchanges)
        if list.count == Boundaries.capacity {
            list.entries[list.count - 1] = boundary
        } else {
            if list.count == 0 { slotsWithBoundaries += 1 }
            list.entries[list.count] = boundary
            list.count += 1
        }
        boundaries[slot.index] = list
    }

    /// The furthest boundary of `slot` that is acknowledged (its request by the end server, its
    /// response logged) and older than every client exchange in flight (`oldestInFlight`: the
    /// smallest stamp among them), removed with those before it.
    func due(_ slot: Slot, before oldestInFlight: UInt64, serverAcked: UInt64, clientLogged: UInt64) -> ReplayStart? {
        var list = boundaries[slot.index]
        guard list.serial == slot.serial, list.count > 0 else { return nil }
        var taken = 0
        while taken < list.count, list.entries[taken].stamp < oldestInFlight,
            list.entries[taken].start.serverOffset <= serverAcked,
            list.entries[taken].start.clientOffset <= clientLogged
        {
            taken += 1
        }
        guard taken > 0 else { return nil }
        let found = list.entries[taken - 1].start
        for index in 0..<(list.count - taken) { list.entries[index] = list.entries[index + taken] }
        list.count -= taken
        if list.count == 0 { slotsWithBoundaries -= 1 }
        boundaries[slot.index] = list
        return found
    }

    /// The boundaries of `slot` past `start` that are still held (not trimmed yet), oldest first:
    /// places a replay may start it at, once their exchange is acknowledged (`ConnectionLog.trim`
    /// says).
    /// A restarted daemon has only the latest two, which the log keeps beside the record.
    func boundaries(_ slot: Slot, after start: ReplayStart) -> [ReplayStart] {
        var found: [ReplayStart] = []
        let list = boundaries[slot.index]
        if list.serial == slot.serial { found = (0..<list.count).map { list.entries[$0].start } }
        for hint in log.boundaryHints(slot) where !found.contains(hint) { found.append(hint) }
        return found.filter { $0.serverOffset > start.serverOffset }.sorted { $0.serverOffset < $1.serverOffset }
    }

    /// The guest's bytes on a connection it opened, from stream offset `offset` on (its requests).
    func guestSent(_ slot: Slot, _ bytes: UnsafeRawBufferPointer, at offset: UInt64) {
        guard heads[slot.index].serial == slot.serial else { return }
        heads[slot.index].feed(bytes, at: offset) { start, crc in
            // The head a replay begins with goes into the record too (a restarted daemon has it).
            if log.current(slot).replayStart.serverOffset == start { log.setReplayHead(slot, crc: crc) }
        }
    }

    /// `slot` was trimmed to `offset`.
    func trimmed(_ slot: Slot, to offset: UInt64) {
        guard heads[slot.index].serial == slot.serial else { return }
        heads[slot.index].forget(before: offset)
        if let crc = heads[slot.index].crc(from: offset) { log.setReplayHead(slot, crc: crc) }
    }

    /// The CRC32C of the first `RequestHeads.length` bytes the guest sent on `record` from stream
    /// offset `start` (a place a replay may start it), when known: from memory, or for its replay
    /// start from the record (a restarted daemon's memory has none).
    func requestHead(_ record: ConnectionRecord, from start: UInt64) -> UInt32? {
        let slot = record.slot
        if heads[slot.index].serial == slot.serial, let crc = heads[slot.index].crc(from: start) { return crc }
        return start == record.replayStart.serverOffset ? record.replayHeadCRC : nil
    }

    func noteFramingStopped(_ reason: HTTPStop?) {
        stops.withLock { $0[reason?.description ?? "segment too large to frame", default: 0] += 1 }
    }

    /// Forgets SYNs no end server answered. Cheap enough to call every loop turn; it scans once
    /// a second.
    func sweep(now: UInt64) {
        guard now &- lastSweep >= 1_000_000_000, !pending.isEmpty else { return }
        lastSweep = now
        pending = pending.filter { now &- $0.value.seenAt < Self.pendingNanos }
    }
}
