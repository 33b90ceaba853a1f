import FTVMLog
import FTVMWire
import Logging
import Synchronization

/// FT-TCP's south-side wrapper, moved from the guest kernel to the host relay: it sees every
/// frame between the clients and the active guest, logs each client connection to the protected
/// service, and decides whether the frame may pass.
///
/// Output commit (DESIGN.md invariant 1): a client byte is written to the log *before* the frame
/// carrying it is forwarded to the guest; a segment whose bytes cannot be logged (a gap ahead of
/// what is logged, or a full log) is dropped, and the client's TCP retransmits it. SYN, SYN/ACK,
/// ACK, timestamps and FIN are recorded as they pass; a connection's record is freed after its
/// final ACK, or at once on a RST.
///
/// Runs on the relay thread only (the log has one writer); it allocates nothing per frame.
public final class SouthSide: @unchecked Sendable {
    public struct Counters: Sendable, Codable, Equatable {
        /// Segments of logged connections.
        public var tracked: UInt64
        /// TCP segments to or from the service with no record (connections older than the log).
        public var untracked: UInt64
        /// Client segments dropped because their bytes could not be logged (gap or full log).
        public var notLogged: UInt64
        /// SYNs dropped because the log had no room for another connection.
        public var refused: UInt64
        /// Frames the wire layer found truncated or illegal (forwarded untouched: not ours to judge).
        public var malformed: UInt64
    }

    enum Verdict {
        case forward, drop
        /// Forward to the guest being drained by an upgrade (the connection is pinned to it).
        case forwardToDrain
        /// A FIN or RST from the guest: hold it until the guest is known to be healthy (the relay's
        /// close fence), then pass it back with `releasing: true`.
        case fence
    }

    let log: ConnectionLog
    let service: IPv4Address
    /// Replays connections into a guest that took over, and translates them afterwards.
    let splicer: Splicer
    // Written by the relay thread, read by status: relaxed atomics, no lock on the packet path.
    private let tracked = Atomic<UInt64>(0)
    private let untracked = Atomic<UInt64>(0)
    private let notLogged = Atomic<UInt64>(0)
    private let refused = Atomic<UInt64>(0)
    private let malformed = Atomic<UInt64>(0)

    var counters: Counters {
        Counters(
            tracked: tracked.load(ordering: .relaxed), untracked: untracked.load(ordering: .relaxed),
            notLogged: notLogged.load(ordering: .relaxed), refused: refused.load(ordering: .relaxed),
            malformed: malformed.load(ordering: .relaxed))
    }
    /// Per record slot: where each side's FIN ends (its sequence + 1), to free the record after
    /// the last ACK. Pre-allocated to the log's slot count.
    private var clientFINEnd: [UInt32?]
    private var serverFINEnd: [UInt32?]
    private let maskScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    init(
        log: ConnectionLog, service: IPv4Address, serviceMAC: MACAddress = MACAddress(0x52, 0x54, 0, 0x77, 0, 2),
        logger: Logger = Logger(label: "ftvm.splicer")
    ) {
        self.log = log
        self.service = service
        splicer = Splicer(log: log, service: service, serviceMAC: serviceMAC, logger: logger)
        let slots = log.usage.slotCount
        clientFINEnd = Array(repeating: nil, count: slots)
        serverFINEnd = Array(repeating: nil, count: slots)
        pinnedSerial = Array(repeating: 0, count: slots)
    }

    deinit { maskScratch.deallocate() }

    // MARK: Draining (an upgrade)

    /// Per slot: the serial of a connection pinned to the guest being drained (0: none).
    private var pinnedSerial: [UInt64]
    /// While set, pinned connections stay with the draining guest and the rest go to the new one.
    private(set) var draining = false

    /// Pins every live connection to the guest that serves it now; returns how many.
    func pinAll() -> Int {
        var count = 0
        log.forEachLive { slot in
            pinnedSerial[slot.index] = slot.serial
            count += 1
        }
        draining = true
        return count
    }

    /// Pinned connections still open.
    func pinnedOpen() -> Int {
        var count = 0
        log.forEachLive { slot in if pinnedSerial[slot.index] == slot.serial { count += 1 } }
        return count
    }

    func isPinned(_ slot: Slot) -> Bool { pinnedSerial[slot.index] == slot.serial }

    /// Ends the drain: every connection belongs to the active guest again.
    func unpinAll() {
        for index in pinnedSerial.indices { pinnedSerial[index] = 0 }
        draining = false
    }

    // MARK: Frames

    /// A frame from the clients' tap, before it is sent to the guest.
    /// While an upgrade drains, a pinned connection's frames go to the draining guest.
    func fromClient(_ frame: UnsafeMutableRawBufferPointer, sink: FrameSink) -> Verdict {
        let (verdict, slot) = logClient(frame, sink: sink)
        guard draining, verdict == .forward, let slot, isPinned(slot) else { return verdict }
        return .forwardToDrain
    }

    /// Logs a client frame; returns what to do with it and the connection it belongs to.
    private func logClient(_ frame: UnsafeMutableRawBufferPointer, sink: FrameSink) -> (Verdict, Slot?) {
        guard var segment = tcp(frame), segment.ipv4.destination == service else { return (.forward, nil) }
        splicer.clientMAC = segment.ethernet.source
        let key = FlowKey(
            clientAddress: segment.ipv4.source.rawValue, clientPort: segment.sourcePort,
            serverAddress: service.rawValue, serverPort: segment.destinationPort)
        let flags = segment.flags
        let sequence = segment.sequenceNumber.rawValue
        if flags.contains(.syn) && !flags.contains(.ack) {
            if let slot = log.lookup(key), log.current(slot).clientISN == sequence {
                // A retransmitted SYN of a connection already logged; a replay sends its own.
                return (splicer.phase(of: slot) == .idle ? .forward : .drop, slot)
            }
            guard let slot = log.open(key: key, clientISN: sequence, options: SYNOptions(segment.options)) else {
                refused.add(1, ordering: .relaxed)
                return (.drop, nil)
            }
            clientFINEnd[slot.index] = nil
            serverFINEnd[slot.index] = nil
            if let stamps = segment.options.timestamps {
                log.noteTimestamps(slot, fromClient: true, tsval: stamps.value, tsecr: stamps.echoReply)
            }
            tracked.add(1, ordering: .relaxed)
            return (.forward, slot)
        }
        guard let slot = log.lookup(key) else {
            untracked.add(1, ordering: .relaxed)
            return (.forward, nil)
        }
        tracked.add(1, ordering: .relaxed)
        if flags.contains(.rst) {
            let forward = splicer.fromClient(slot, &segment, sink: sink)
            close(slot)
            return (forward ? .forward : .drop, slot)
        }
        let length = segment.payloadLength
        if length > 0 {
            guard log.appendClientPayload(slot, seq: sequence, bytes: UnsafeRawBufferPointer(segment.payload)).mayForward else {
                notLogged.add(1, ordering: .relaxed)
                return (.drop, slot)
            }
        }
        if flags.contains(.fin) {
            let finSequence = sequence &+ UInt32(truncatingIfNeeded: length)
            guard log.appendClientFIN(slot, seq: finSequence).mayForward else {
                notLogged.add(1, ordering: .relaxed)
                return (.drop, slot)
            }
            clientFINEnd[slot.index] = finSequence &+ 1
        }
        if let stamps = segment.options.timestamps {
            log.noteTimestamps(slot, fromClient: true, tsval: stamps.value, tsecr: stamps.echoReply)
        }
        var finished = false
        if flags.contains(.ack) {
            let ack = segment.acknowledgmentNumber.rawValue
            log.noteClientAck(slot, ack: ack)
            // Server closed first and this is the client's last word: the exchange is complete.
            finished = clientFINEnd[slot.index] != nil && serverFINEnd[slot.index].map { SequenceMath.isAtOrAfter(ack, $0) } == true
        }
        let forward = splicer.fromClient(slot, &segment, sink: sink)
        if finished { close(slot) }
        return (forward ? .forward : .drop, slot)
    }

    /// A frame from the active guest, before it goes to the clients. `releasing` is set when the
    /// relay's close fence lets a held FIN or RST go.
    /// `fromDrainingGuest`: the frame comes from the guest an upgrade drains, which speaks only
    /// for its pinned connections (as the new guest speaks only for the others).
    func fromGuest(
        _ frame: UnsafeMutableRawBufferPointer, now: UInt64, sink: FrameSink, releasing: Bool = false,
        fromDrainingGuest: Bool = false
    ) -> Verdict {
        // While draining, each guest speaks for its own connections only (and ARP and the like
        // come from the new one).
        func speaksFor(pinned: Bool) -> Bool { !draining || pinned == fromDrainingGuest }
        guard var segment = tcp(frame), segment.ipv4.source == service else {
            return speaksFor(pinned: false) ? .forward : .drop
        }
        let key = FlowKey(
            clientAddress: segment.ipv4.destination.rawValue, clientPort: segment.destinationPort,
            serverAddress: service.rawValue, serverPort: segment.sourcePort)
        guard let slot = log.lookup(key) else {
            guard speaksFor(pinned: false) else { return .drop }
            untracked.add(1, ordering: .relaxed)
            return .forward
        }
        guard speaksFor(pinned: isPinned(slot)) else { return .drop }
        tracked.add(1, ordering: .relaxed)
        let phase = splicer.phase(of: slot)
        if phase == .idle || phase == .spliced, !releasing, !segment.flags.isDisjoint(with: [.fin, .rst]) {
            return .fence
        }
        if splicer.fromGuest(slot, &segment, now: now, sink: sink) == .consumed { return .drop }
        let flags = segment.flags
        let sequence = segment.sequenceNumber.rawValue
        if flags.contains(.rst) {
            close(slot)
            return .forward
        }
        if flags.contains(.syn) {
            if phase == .idle {
                log.setServerHandshake(slot, serverISN: sequence, options: SYNOptions(segment.options))
                // The client's PAWS state starts from this TSval: a replay must carry on past it.
                if let stamps = segment.options.timestamps {
                    log.noteTimestamps(slot, fromClient: false, tsval: stamps.value, tsecr: stamps.echoReply)
                }
            }
            return .forward
        }
        let length = segment.payloadLength
        let fin = flags.contains(.fin)
        if length > 0 || fin {
            let end = sequence &+ UInt32(truncatingIfNeeded: length) &+ (fin ? 1 : 0)
            // Checksummed with any `Date:` value masked, as the replay compares it (HTTPDateMask).
            let payload = length > 0 ? HTTPDateMask.masked(UnsafeRawBufferPointer(segment.payload), scratch: maskScratch) : nil
            log.noteServerSent(slot, endSeq: end, payload: payload, fin: fin)
            if fin { serverFINEnd[slot.index] = end }
        }
        if let stamps = segment.options.timestamps {
            log.noteTimestamps(slot, fromClient: false, tsval: stamps.value, tsecr: stamps.echoReply)
        }
        // Client closed first and the server acknowledges its FIN after sending its own.
        if flags.contains(.ack), serverFINEnd[slot.index] != nil, let end = clientFINEnd[slot.index],
            SequenceMath.isAtOrAfter(segment.acknowledgmentNumber.rawValue, end)
        {
            close(slot)
        }
        return .forward
    }

    /// Ends a connection: its replay state, then its record.
    private func close(_ slot: Slot) {
        splicer.forget(slot)
        log.close(slot)
    }

    /// Clears the FIN of a segment that carries data and a FIN (no RST); false, changing
    /// nothing, for any other frame.
    func withoutFIN(_ frame: UnsafeMutableRawBufferPointer) -> Bool {
        guard var segment = tcp(frame), segment.payloadLength > 0, segment.flags.contains(.fin),
            !segment.flags.contains(.rst)
        else { return false }
        segment.clearFlags(.fin)
        return true
    }

    private func tcp(_ frame: UnsafeMutableRawBufferPointer) -> TCPSegmentView? {
        switch FrameClass.classify(frame) {
        case .ipv4TCP(let segment):
            return segment
        case .truncated, .illegal:
            malformed.add(1, ordering: .relaxed)
            return nil
        default:
            return nil
        }
    }
}

extension SYNOptions {
    init(_ options: TCPOptions) {
        self.init(
            maximumSegmentSize: options.maximumSegmentSize, windowScale: options.windowScale,
            sackPermitted: options.sackPermitted, timestamps: options.timestamps != nil)
    }
}
