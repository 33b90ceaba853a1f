import FTVMChannel
import FTVMHTTP
import FTVMLog
import FTVMSystem
import FTVMWire
import Logging
import Synchronization

/// FT-TCP's south-side wrapper, moved from the guest kernel to the host relay: it sees every
/// frame between the clients and the active guest, logs each client connection to the protected
/// service, keeps each connection's log bounded, and decides whether the frame may pass.
///
/// Output commit (DESIGN.md invariant 1): a client byte of a protected connection is written to
/// the log *before* the frame carrying it is forwarded to the guest; a segment whose bytes cannot
/// be logged in order (a gap ahead of what is logged) is dropped, and the client's TCP retransmits
/// it. SYN, SYN/ACK, ACK, timestamps and FIN are recorded as they pass; a connection's record is
/// freed after its final ACK, at once on a RST, or after its client stayed silent for the idle
/// bound (`Policy.idleReclaimNanos`: a client that vanished without a FIN or RST the relay saw).
///
/// Bounded (invariant 8): the log bounds protection, never service. A connection the log cannot
/// hold becomes unprotected and passes unlogged; one that finds no free slot passes untracked.
/// For HTTP ports the wrapper follows HTTP/1.x framing in both directions (`HTTPExchangeTracker`)
/// and trims each exchange from the log once its request is logged and its response acknowledged
/// by the client; other protocols name their boundaries through the guest agent (`explicitTrim`).
///
/// Runs on the relay thread only (the log has one writer); it allocates nothing per frame.
public final class SouthSide: @unchecked Sendable {
    /// What the wrapper is told by the pair's configuration.
    public struct Policy: Sendable, Codable, Equatable {
        /// Server ports whose connections are HTTP/1.x: framing is followed, exchanges trimmed and
        /// `Date:` values masked. Other ports are logged whole (up to the budget) unless the
        /// service trims them explicitly.
        public var httpPorts: Set<UInt16> = [80, 8080, 8081, 8090]
        /// A connection whose client sent nothing for this long has its record reclaimed.
        public var idleReclaimNanos: UInt64 = 600_000_000_000

        public init() {}
    }

    public struct Counters: Sendable, Codable, Equatable {
        /// Segments of logged connections.
        public var tracked: UInt64
        /// TCP segments to or from the service with no record (connections older than the log,
        /// or admitted when no slot was free).
        public var untracked: UInt64
        /// Client segments dropped because their bytes could not be logged in order (a gap).
        public var notLogged: UInt64
        /// Guest segments dropped because they came after server bytes the relay never saw (the
        /// guest retransmits them once the hole is filled); nil from an older daemon.
        public var serverPastAHole: UInt64?
        /// New connections admitted without a record because no slot was free.
        public var admittedUnlogged: UInt64
        /// Frames the wire layer found truncated or illegal (forwarded untouched: not ours to judge).
        public var malformed: UInt64
        /// HTTP exchanges seen complete (request logged, final response framed).
        public var exchanges: UInt64
        /// HTTP connections whose framing the wrapper stopped following (they fall back to
        /// replaying their whole history since the last trim), and why.
        public var framingStopped: [String: UInt64]
        /// Explicit trims from guests: received, used (became trim candidates), and not usable
        /// (unknown connection, or a server offset that is not a checkpoint).
        public var explicitTrims: UInt64
        public var explicitTrimsUsed: UInt64
        public var explicitTrimsMissed: UInt64
        /// Connections the guest opened itself (relay servers, docs/relay-servers.md); nil from a
        /// daemon that predates them.
        public var relayServers: OutgoingSide.Counters?
    }

    package enum Verdict {
        case forward, drop
        /// Forward to the guest being drained by an upgrade (the connection is pinned to it).
        case forwardToDrain
        /// A FIN or RST from the guest: hold it until the guest is known to be healthy (the relay's
        /// close fence), then pass it back with `releasing: true`.
        case fence
    }

    /// The relay's own view of one logged connection (per record slot, pre-allocated).
    struct Flow {
        /// The connection this entry describes (a slot's serial; 0: none).
        var serial: UInt64 = 0
        /// Where each side's FIN ends (its sequence + 1), to free the record after the last ACK.
        var clientFINEnd: UInt32?
        var serverFINEnd: UInt32?
        /// Stays with the guest an upgrade drains.
        var pinned = false
        /// When the client last sent a frame (Monotonic nanos).
        var lastClientFrame: UInt64 = 0
        var framing = Framing.none
        var trims = TrimCandidates()
        /// The end (server offset) of the response in progress last noted in the log, so that a
        /// restarted relay takes the framing up again there (`Framing.resuming`).
        var notedResponseEnd: UInt64 = 0
        /// A relay server's connection: the end (server offset) of the request in flight last
        /// noted in the log (`noteRequestInFlight`, SouthSide+Outgoing.swift).
        var notedRequestEnd: UInt64 = 0
        /// Relay servers (SouthSide+Outgoing.swift): for a client connection, the client exchange
        /// count when its exchange in flight began (0: none in flight).
        var exchangeBegan: UInt64 = 0
        /// The guest opened this connection (its "client" is an end server).
        var guestInitiated = false
        /// A guest-initiated connection that ended while a client exchange that may have caused
        /// it was in flight: its record stays in the log until no such exchange is left
        /// (`requestStamp`, SouthSide+Outgoing.swift).
        var kept = false
        /// A guest-initiated connection: the client exchange count when the guest last sent
        /// request bytes on it. Only a client exchange that began by then can have caused them,
        /// so only such a one, still in flight, can re-send them (SouthSide+Outgoing.swift).
        var requestStamp: UInt64 = 0
    }

    /// Whether a connection's HTTP framing is followed, and from which stream offsets the
    /// tracker counts (a tracker rebuilt after a daemon restart starts at the replay start).
    enum Framing {
        case none
        case following(clientBase: UInt64, serverBase: UInt64)
        /// A restarted relay found the connection inside a response whose end the log noted
        /// (`ConnectionLog.noteResponse`): the rest of its body is checksummed as it is, and at
        /// its end (server offset `serverBase`; its request ended at client offset `clientBase`)
        /// a fresh tracker follows the framing again, fed the logged requests from there.
        case resuming(clientBase: UInt64, serverBase: UInt64)
        case stopped
        /// A guest-initiated connection's framing, mirrored: the guest's stream holds the requests,
        /// the end server's (the logged "client" bytes) the responses (SouthSide+Outgoing.swift).
        /// The tracker counts from a boundary: guest stream offset `requestBase`, end-server
        /// stream offset `responseBase` (0 and 0 from the connection's start; a restarted relay
        /// takes the framing up at the boundary where it found the connection idle).
        case outgoing(requestBase: UInt64, responseBase: UInt64)
    }

    package let log: ConnectionLog
    let service: IPv4Address
    package let policy: Policy
    /// Replays connections into a guest that took over, and translates them afterwards.
    package let splicer: Splicer
    /// Relay servers: connections the guest opens itself (OutgoingSide.swift).
    let outgoing: OutgoingSide
    private let logger: Logger
    // Written by the relay thread, read by status: relaxed atomics, no lock on the packet path.
    private let tracked = Atomic<UInt64>(0)
    private let untracked = Atomic<UInt64>(0)
    private let notLogged = Atomic<UInt64>(0)
    private let pastAHole = Atomic<UInt64>(0)
    private let admittedUnlogged = Atomic<UInt64>(0)
    private let malformed = Atomic<UInt64>(0)
    private let exchanges = Atomic<UInt64>(0)
    private let explicitTrims = Atomic<UInt64>(0)
    private let explicitTrimsUsed = Atomic<UInt64>(0)
    private let explicitTrimsMissed = Atomic<UInt64>(0)
    /// Since when (Monotonic nanos) a client segment that needs an answer went to the active guest
    /// with no frame from it since; 0: none waits. The health loop's data-path check.
    private let awaitingAnswerSince = Atomic<UInt64>(0)
    /// Set by `logClient` for the frame in hand: a valid TCP segment to the service that the
    /// guest must answer (data, SYN or FIN).
    private var expectsAnswer = false
    private var probe = Probe()
    /// Why followed connections stopped being followed, counted (rare: a lock is fine).
    private let stops = Mutex<[String: UInt64]>([:])

    package var counters: Counters {
        Counters(
            tracked: tracked.load(ordering: .relaxed), untracked: untracked.load(ordering: .relaxed),
            notLogged: notLogged.load(ordering: .relaxed), serverPastAHole: pastAHole.load(ordering: .relaxed),
            admittedUnlogged: admittedUnlogged.load(ordering: .relaxed),
            malformed: malformed.load(ordering: .relaxed), exchanges: exchanges.load(ordering: .relaxed),
            framingStopped: stops.withLock { $0 }, explicitTrims: explicitTrims.load(ordering: .relaxed),
            explicitTrimsUsed: explicitTrimsUsed.load(ordering: .relaxed),
            explicitTrimsMissed: explicitTrimsMissed.load(ordering: .relaxed), relayServers: outgoing.counters)
    }

    var flows: [Flow]
    /// Per slot, the HTTP tracker of a connection whose framing is followed. Kept apart from
    /// `flows` so the tracker's callbacks may update the flow while the tracker runs.
    let trackers: UnsafeMutableBufferPointer<HTTPExchangeTracker>
    let maskScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 16)
    /// The first bytes of each followed connection's current response (a replay's range resume).
    let responseHeads: ResponseHeads
    private var lastSweep: UInt64 = 0
    /// Relay servers' ended connections kept in the log (`closeOrKeep`), and at most how many.
    var keptCount = 0
    let keptLimit: Int

    /// - Parameter responseHeadsPath: where the open responses' heads are kept for a restarted
    ///   daemon's range resumes (`ResponseHeads`), beside the log; nil keeps them in memory, as
    ///   does a file that cannot be made (said in the log: replays then regenerate).
    package init(
        log: ConnectionLog, service: IPv4Address, serviceMAC: MACAddress = MACAddress(0x52, 0x54, 0, 0x77, 0, 2),
        policy: Policy = Policy(), responseHeadsPath: String? = nil, logger: Logger = Logger(label: "ftvm.splicer")
    ) {
        self.log = log
        self.service = service
        self.policy = policy
        self.logger = logger
        outgoing = OutgoingSide(log: log)
        let slots = log.usage.slotCount
        responseHeads = Self.responseHeads(at: responseHeadsPath, slots: slots, logger: logger)
        splicer = Splicer(
            log: log, service: service, serviceMAC: serviceMAC, outgoing: outgoing, responseHeads: responseHeads,
            logger: logger)
        keptLimit = slots / 4
        flows = Array(repeating: Flow(), count: slots)
        trackers = .allocate(capacity: slots)
        trackers.initialize(repeating: HTTPExchangeTracker())
        adoptLoggedConnections(now: Monotonic.nanos())
    }

    private static func responseHeads(at path: String?, slots: Int, logger: Logger) -> ResponseHeads {
        guard let path else { return ResponseHeads(slots: slots) }
        do {
            return try ResponseHeads.persistent(path: path, slots: slots)
        } catch {
            logger.warning(
                "cannot keep response heads for a restarted daemon; its replays will regenerate open responses",
                metadata: ["path": "\(path)", "error": "\(error)"])
            return ResponseHeads(slots: slots)
        }
    }

    deinit {
        maskScratch.deallocate()
        trackers.deallocate()
    }

    /// A restarted daemon finds connections in the log: each gets a fresh flow, and an HTTP one
    /// whose server stream sits at its replay start gets its tracker back (fed the logged client
    /// bytes since then). One caught in mid-response takes the framing up again at that
    /// response's end when the log noted it (a body of known length, `Framing.resuming`);
    /// otherwise its framing stops there, so masking ends at what the checksum covers and the
    /// connection replays its history since the last trim.
    ///
    /// The client exchanges in flight are not in the log, so a client connection with bytes
    /// past its replay start counts as having one, and the relay servers' ended connections
    /// kept are stamped after them: a replay the restarted daemon runs re-sends those exchanges'
    /// requests, which only the kept records recognise as sent.
    private func adoptLoggedConnections(now: UInt64) {
        var kept: [Slot] = []
        var midExchange: [Slot] = []
        log.forEachLive { slot in
            let record = log.current(slot)
            flows[slot.index] = Flow(serial: slot.serial, lastClientFrame: now, guestInitiated: record.guestInitiated)
            if record.guestInitiated, record.clientFINLogged, record.serverFINSent { kept.append(slot) }
            if !record.guestInitiated, record.clientBytesLogged > record.replayStart.clientOffset {
                flows[slot.index].exchangeBegan = outgoing.beginClientExchange()
            }
            if record.guestInitiated {
                if adoptOutgoing(slot, record) == .midExchange { midExchange.append(slot) }
                return
            }
            guard case .http(until: nil) = record.masking else { return }
            let checked = record.serverStream.byteCount
            guard record.protection == .protected, record.serverStream.endSequence == record.serverSendMax else {
                return stopFramingOnAdoption(slot, at: checked)
            }
            if checked == record.replayStart.serverOffset {
                return resumeFollowing(slot, clientBase: record.replayStart.clientOffset, serverBase: checked)
            }
            guard let response = log.responseHint(slot), response.bodyStart <= checked, checked <= response.end,
                record.replayStart.clientOffset <= response.requestEnd, response.requestEnd <= record.clientBytesLogged
            else { return stopFramingOnAdoption(slot, at: checked) }
            flows[slot.index].notedResponseEnd = response.end
            flows[slot.index].framing = .resuming(clientBase: response.requestEnd, serverBase: response.end)
            if checked == response.end {
                resumeFollowing(
                    slot, clientBase: response.requestEnd, serverBase: checked, crc: record.serverStream.crc)
            }
        }
        for slot in kept { flows[slot.index].kept = true }
        keptCount += kept.count
        // (The adopted exchanges in flight are all stamped now: any of them may have caused them.)
        log.forEachLive { slot in
            if flows[slot.index].guestInitiated { flows[slot.index].requestStamp = outgoing.currentStamp }
        }
        // (After the stamps: an exchange these complete is stamped after every adopted one.)
        for slot in midExchange { feedLoggedResponses(slot) }
    }

    /// A relay server's connection found by a restarted relay: when it is idle at its latest
    /// boundary (every request answered in full, nothing since), its framing is followed again
    /// from there, so its later exchanges are boundaries a replay can match and trim at. Left
    /// unfollowed, a pooled back-end connection (kept for many requests and carried across
    /// failovers) could be matched only from its replay start ever after, and each later request
    /// a replay re-ran reached the end server twice (docs/relay-servers.md). One caught inside an
    /// exchange is followed again when the log noted its request (`noteRequestInFlight`) and the
    /// guest sent nothing after it: a tracker taken up after that request is fed the end
    /// server's logged answer since the boundary (`feedLoggedResponses`, once every adopted
    /// client exchange is stamped). Any other is not followed: the guest's request bytes are not
    /// in the log.
    private func adoptOutgoing(_ slot: Slot, _ record: ConnectionRecord) -> OutgoingAdoption {
        let latest = log.boundaryHints(slot).last ?? record.replayStart
        let sent = record.serverStream.byteCount
        guard record.protection == .protected, !record.clientFINLogged,
            latest.serverOffset >= record.replayStart.serverOffset,
            latest.clientOffset >= record.replayStart.clientOffset, record.clientBytesLogged >= latest.clientOffset
        else { return .unfollowed }
        let adoption: OutgoingAdoption
        if sent == latest.serverOffset, record.clientBytesLogged == latest.clientOffset {
            trackers[slot.index] = HTTPExchangeTracker()
            adoption = .idle
        } else if let request = log.requestHint(slot), request.boundary == latest, sent == request.requestEnd {
            trackers[slot.index] = HTTPExchangeTracker(
                awaitingResponseTo: sent - latest.serverOffset, isHead: request.isHead)
            flows[slot.index].notedRequestEnd = sent
            adoption = .midExchange
        } else {
            return .unfollowed
        }
        flows[slot.index].framing = .outgoing(requestBase: latest.serverOffset, responseBase: latest.clientOffset)
        flows[slot.index].trims.checkpoint(sent, crc: record.serverStream.crc)
        return adoption
    }

    enum OutgoingAdoption { case unfollowed, idle, midExchange }

    private func stopFramingOnAdoption(_ slot: Slot, at offset: UInt64) {
        log.stopFraming(slot, atServerOffset: offset)
        flows[slot.index].framing = .stopped
        stops.withLock { $0["daemon restarted mid-response", default: 0] += 1 }
    }

    /// Follows the framing with a fresh tracker from a boundary (`clientBase`, `serverBase`),
    /// fed the logged client bytes from there; with the server stream's checksum there (`crc`),
    /// the boundary is offered for a trim too.
    private func resumeFollowing(_ slot: Slot, clientBase: UInt64, serverBase: UInt64, crc: UInt32? = nil) {
        if let crc {
            flows[slot.index].trims.checkpoint(serverBase, crc: crc)
            flows[slot.index].trims.propose(client: clientBase, server: serverBase)
        }
        flows[slot.index].framing = .following(clientBase: clientBase, serverBase: serverBase)
        trackers[slot.index] = HTTPExchangeTracker()
        responseHeads.begin(slot, at: serverBase)
        let skip = Int(clientBase - log.current(slot).replayStart.clientOffset)
        let logged = log.clientBytes(slot)
        logged[skip...].withUnsafeBytes { feedRequests(slot, $0) }
    }

    // MARK: Draining (an upgrade)

    /// While set, pinned connections stay with the draining guest and the rest go to the new one.
    private(set) var draining = false

    /// Pins every live connection to the guest that serves it now; returns how many clients'
    /// connections that is. (A relay server's own connections are pinned too, but the drain
    /// waits for clients only: once none is left to serve, a kept-alive back-end connection
    /// would hold it to its timeout. What is still open then is replayed with the rest.)
    func pinAll() -> Int {
        var count = 0
        log.forEachLive { slot in
            flows[slot.index].pinned = true
            if !flows[slot.index].guestInitiated { count += 1 }
        }
        draining = true
        return count
    }

    /// Pinned clients' connections still open.
    func pinnedOpen() -> Int {
        var count = 0
        log.forEachLive { slot in if isPinned(slot), !flows[slot.index].guestInitiated { count += 1 } }
        return count
    }

    func isPinned(_ slot: Slot) -> Bool { flows[slot.index].serial == slot.serial && flows[slot.index].pinned }

    /// Ends the drain: every connection belongs to the active guest again.
    func unpinAll() {
        for index in flows.indices { flows[index].pinned = false }
        draining = false
    }

    /// Moves every pinned connection that sits between two exchanges to the new guest now, by
    /// replay at that boundary: there is nothing to re-inject and nothing to regenerate, so the
    /// new version answers its next request. Returns how many moved.
    func moveIdlePinned(now: UInt64, sink: FrameSink) -> Int {
        var moved = 0
        log.forEachLive { slot in
            // (A relay server's own connection stays with the draining guest, which may still use it.)
            guard isPinned(slot), !flows[slot.index].guestInitiated, isBetweenExchanges(slot) else { return }
            flows[slot.index].pinned = false
            splicer.add(slot, now: now, sink: sink)
            moved += 1
        }
        return moved
    }

    /// The connection's log is trimmed to its end: no request is partly or wholly unanswered, no
    /// response partly unacknowledged, no FIN either way. A new connection there is equivalent.
    func isBetweenExchanges(_ slot: Slot) -> Bool {
        let record = log.current(slot)
        return record.protection == .protected && record.serverISN != nil && !record.clientFINLogged
            && !record.serverFINSent && record.replayStart.clientOffset == record.clientBytesLogged
            && record.replayStart.serverOffset == record.serverStream.byteCount
            && record.serverStream.endSequence == record.serverSendMax && splicer.phase(of: slot) != .handshaking
            && splicer.phase(of: slot) != .catchingUp
    }

    // MARK: Frames

    /// A frame from the clients' tap, before it is sent to the guest.
    /// While an upgrade drains, a pinned connection's frames go to the draining guest.
    /// `partialChecksum`: the frame's virtio-net header says its TCP checksum is not finished.
    package func fromClient(
        _ frame: UnsafeMutableRawBufferPointer, partialChecksum: Bool = false, now: UInt64, sink: FrameSink
    ) -> Verdict {
        expectsAnswer = false
        let (verdict, slot) = logClient(frame, partialChecksum: partialChecksum, now: now, sink: sink)
        if draining, verdict == .forward, let slot, isPinned(slot) { return .forwardToDrain }
        if verdict == .forward, expectsAnswer {
            noteAwaitingAnswer(frame, partialChecksum: partialChecksum, now: now)
        } else if verdict == .forward, slot == nil, asksForService(frame),
            awaitingAnswerSince.load(ordering: .relaxed) == 0
        {
            awaitingAnswerSince.store(max(now, 1), ordering: .relaxed)
        }
        return verdict
    }

    /// An ARP request for the service's address: the guest must answer it. A client whose entry
    /// for the service expired sends nothing else, so a dead NIC must show here too (a daemon
    /// restarted after the NIC died sees no segment that was waiting).
    private func asksForService(_ frame: UnsafeMutableRawBufferPointer) -> Bool {
        guard let arp = arp(frame) else { return false }
        return arp.operation == .request && arp.targetIP == service
    }

    /// The ARP message in `frame`, if it holds one.
    private func arp(_ frame: UnsafeMutableRawBufferPointer) -> ARPView? {
        if case .arp(let arp) = FrameClass.classify(frame) { arp } else { nil }
    }

    /// The active guest is now expected to send something; the first such segment since its
    /// last frame starts the clock (its checksum is checked first: a corrupt segment is dropped
    /// by the guest unanswered, and must not look like a dead data path).
    private func noteAwaitingAnswer(_ frame: UnsafeMutableRawBufferPointer, partialChecksum: Bool, now: UInt64) {
        guard awaitingAnswerSince.load(ordering: .relaxed) == 0,
            let segment = tcp(frame, partialChecksum: partialChecksum),
            segment.isChecksumValid
        else { return }
        awaitingAnswerSince.store(max(now, 1), ordering: .relaxed)
    }

    /// When (monotonic nanos) the oldest client segment still waiting for any frame from the
    /// active guest was sent (nil: none waits).
    package func unansweredSince() -> UInt64? {
        let since = awaitingAnswerSince.load(ordering: .relaxed)
        return since == 0 ? nil : since
    }

    /// A new guest is connected to the uplink: nothing waits for it yet.
    func forgetAwaitedAnswers() { awaitingAnswerSince.store(0, ordering: .relaxed) }

    /// Whether to probe the data path of the active guest, on link `port`, now: an ARP probe for
    /// the service from `Probe.mac` (`FrameBuilder.arpProbe`), once the guest has sent no frame
    /// for `Probe.intervalNanos`, at most once per interval. Clients whose downloads wait for
    /// data send only ACKs, which need no answer, so a dead NIC under such clients started no
    /// clock (seen in a campaign: a network stall found after 62 s, when curl's TCP keep-alive
    /// probe came). Once this guest has answered a probe, each probe needs an answer like a
    /// client's segment and starts the data-path clock; a guest that never answers probes (an
    /// operator's that ignores ARP from 0.0.0.0) is probed to no effect. Relay thread only.
    package func probeDue(port: UInt16, now: UInt64) -> Bool {
        if port != probe.port { probe = Probe(port: port, lastGuestFrame: now, lastProbe: now) }
        guard port != 0, now &- probe.lastGuestFrame >= Probe.intervalNanos,
            now &- probe.lastProbe >= Probe.intervalNanos
        else { return false }
        probe.lastProbe = now
        if probe.answered, awaitingAnswerSince.load(ordering: .relaxed) == 0 {
            awaitingAnswerSince.store(max(now, 1), ordering: .relaxed)
        }
        return true
    }

    /// The relay's probes of the active guest's data path (`probeDue`).
    package struct Probe {
        /// Where a probe comes from: a locally administered MAC that no guest or client has.
        package static let mac = MACAddress(0x02, 0x66, 0x74, 0x76, 0x6D, 0x70)
        static let intervalNanos: UInt64 = 1_000_000_000
        var port: UInt16 = 0
        var lastGuestFrame: UInt64 = 0
        var lastProbe: UInt64 = 0
        /// The guest on `port` answered a probe.
        var answered = false
    }

    /// Whether `frame` is a guest's answer to the relay's probe (which no client asked for).
    private func answersProbe(_ frame: UnsafeMutableRawBufferPointer) -> Bool {
        guard let arp = arp(frame) else { return false }
        return arp.operation == .reply && arp.targetMAC == Probe.mac
    }

    /// Logs a client frame; returns what to do with it and the connection it belongs to.
    private func logClient(
        _ frame: UnsafeMutableRawBufferPointer, partialChecksum: Bool, now: UInt64, sink: FrameSink
    ) -> (Verdict, Slot?) {
        guard var segment = tcp(frame, partialChecksum: partialChecksum), segment.ipv4.destination == service else {
            return (.forward, nil)
        }
        if splicer.clientMAC != segment.ethernet.source {
            splicer.clientMAC = segment.ethernet.source
            log.clientMAC = segment.ethernet.source.rawValue
        }
        let key = FlowKey(
            clientAddress: segment.ipv4.source.rawValue, clientPort: segment.sourcePort,
            serverAddress: service.rawValue, serverPort: segment.destinationPort)
        let flags = segment.flags
        let sequence = segment.sequenceNumber.rawValue
        expectsAnswer = !flags.contains(.rst) && (segment.payloadLength > 0 || !flags.isDisjoint(with: [.syn, .fin]))
        if flags.contains(.syn) && !flags.contains(.ack) {
            if let slot = log.lookup(key), log.current(slot).clientISN == sequence {
                // A retransmitted SYN of a connection already logged; a replay sends its own.
                flows[slot.index].lastClientFrame = now
                return (splicer.phase(of: slot) == .idle ? .forward : .drop, slot)
            }
            let http = policy.httpPorts.contains(segment.destinationPort)
            guard
                let slot = log.open(
                    key: key, clientISN: sequence, options: SYNOptions(segment.options), httpFraming: http)
            else {
                // No slot: the connection is served, unlogged (a failover cannot carry it).
                admittedUnlogged.add(1, ordering: .relaxed)
                return (.forward, nil)
            }
            flows[slot.index] = Flow(
                serial: slot.serial, lastClientFrame: now,
                framing: http ? .following(clientBase: 0, serverBase: 0) : .none)
            if http {
                trackers[slot.index] = HTTPExchangeTracker()
                responseHeads.begin(slot, at: 0)
            } else {
                responseHeads.forget(slot)
            }
            if let stamps = segment.options.timestamps {
                log.noteTimestamps(slot, fromClient: true, tsval: stamps.value, tsecr: stamps.echoReply)
            }
            tracked.add(1, ordering: .relaxed)
            return (.forward, slot)
        }
        // Relay servers (OutgoingSide.swift): an end server answers a connection the guest opened.
        if flags.contains(.syn), log.lookup(key) == nil,
            let (slot, drained) = outgoing.endServerAnswers(segment, key: key)
        {
            if !splicer.renamedSYNs.isEmpty { splicer.renamedConnectionOpened(slot, &segment) }
            flows[slot.index] = Flow(
                serial: slot.serial, lastClientFrame: now, framing: .outgoing(requestBase: 0, responseBase: 0),
                guestInitiated: true,
                requestStamp: outgoing.currentStamp)
            flows[slot.index].pinned = drained && draining
            trackers[slot.index] = HTTPExchangeTracker()
            tracked.add(1, ordering: .relaxed)
            return (.forward, slot)
        }
        guard let slot = log.lookup(key) else {
            untracked.add(1, ordering: .relaxed)
            return (.forward, nil)
        }
        tracked.add(1, ordering: .relaxed)
        flows[slot.index].lastClientFrame = now
        if flags.contains(.rst) {
            let forward = splicer.fromClient(slot, &segment, sink: sink)
            close(slot)
            return (forward ? .forward : .drop, slot)
        }
        let length = segment.payloadLength
        if length > 0 {
            let payload = UnsafeRawBufferPointer(segment.payload)
            let result = log.appendClientPayload(slot, seq: sequence, bytes: payload)
            guard result.mayForward else {
                notLogged.add(1, ordering: .relaxed)
                return (.drop, slot)
            }
            switch result {
            case .logged(let count), .partial(let count):
                noteClientExchange(slot)
                feedRequests(slot, UnsafeRawBufferPointer(rebasing: payload[(length - count)...]))
            case .unprotected:
                stopFollowing(slot, because: nil)
                flows[slot.index].exchangeBegan = 0  // a failover resets it: it re-runs nothing
            case .duplicate, .gap:
                break
            }
        }
        if flags.contains(.fin) {
            let finSequence = sequence &+ UInt32(truncatingIfNeeded: length)
            guard log.appendClientFIN(slot, seq: finSequence).mayForward else {
                notLogged.add(1, ordering: .relaxed)
                return (.drop, slot)
            }
            flows[slot.index].clientFINEnd = finSequence &+ 1
        }
        if let stamps = segment.options.timestamps {
            log.noteTimestamps(slot, fromClient: true, tsval: stamps.value, tsecr: stamps.echoReply)
        }
        var finished = false
        if flags.contains(.ack) {
            let ack = segment.acknowledgmentNumber.rawValue
            log.noteClientAck(slot, ack: ack)
            trimWhatIsDue(slot)
            // Server closed first and this is the client's last word: the exchange is complete.
            finished =
                flows[slot.index].clientFINEnd != nil
                && flows[slot.index].serverFINEnd.map { SequenceMath.isAtOrAfter(ack, $0) } == true
        }
        let forward = splicer.fromClient(slot, &segment, sink: sink)
        if finished { closeOrKeep(slot) }
        return (forward ? .forward : .drop, slot)
    }

    /// A frame from the active guest, before it goes to the clients. `releasing` is set when the
    /// relay's close fence lets a held FIN or RST go.
    /// `fromDrainingGuest`: the frame comes from the guest an upgrade drains, which speaks only
    /// for its pinned connections (as the new guest speaks only for the others).
    package func fromGuest(
        _ frame: UnsafeMutableRawBufferPointer, partialChecksum: Bool = false, now: UInt64, sink: FrameSink,
        releasing: Bool = false, fromDrainingGuest: Bool = false
    ) -> Verdict {
        // Any frame from the active guest shows its data path lives.
        if !fromDrainingGuest {
            probe.lastGuestFrame = now
            if awaitingAnswerSince.load(ordering: .relaxed) != 0 { awaitingAnswerSince.store(0, ordering: .relaxed) }
        }
        // While draining, each guest speaks for its own connections only (and ARP and the like
        // come from the new one).
        func speaksFor(pinned: Bool) -> Bool { !draining || pinned == fromDrainingGuest }
        guard var segment = tcp(frame, partialChecksum: partialChecksum), segment.ipv4.source == service else {
            if answersProbe(frame) {
                if !fromDrainingGuest { probe.answered = true }
                return .drop
            }
            return speaksFor(pinned: false) ? .forward : .drop
        }
        var key = FlowKey(
            clientAddress: segment.ipv4.destination.rawValue, clientPort: segment.destinationPort,
            serverAddress: service.rawValue, serverPort: segment.sourcePort)
        if releasing {
            logger.debug(
                "fenced close reaches the log", metadata: ["connection": "\(key)", "flags": "\(segment.flags)"])
        }
        // Relay servers (OutgoingSide.swift, Splicer+Outgoing.swift): the guest opens a connection.
        if segment.flags.contains(.syn), !segment.flags.contains(.ack) {
            // Its port again: an ended connection kept for a replay, or one whose end the relay
            // did not see whole (its last ACK lost), is over for the guest, which never opens a
            // connection over a live one. Its record must not take the new connection's bytes.
            if let earlier = log.lookup(key), flows[earlier.index].kept || isEndedEarlier(earlier, by: segment) {
                close(earlier)
            }
            if speaksFor(pinned: false),
                let port = splicer.portTowardEndServer(
                    forNewGuestConnection: key, isn: segment.sequenceNumber.rawValue)
            {
                segment.setPorts(source: port, destination: segment.destinationPort)
                key.serverPort = port
            }
            if speaksFor(pinned: false) {
                splicer.newGuestOpens(key, sink: sink)
                if log.lookup(key) == nil { outgoing.guestOpens(segment, key: key, now: now) }
            } else if log.lookup(key) == nil {
                // The guest an upgrade drains opens a connection while serving a pinned client
                // (a proxy's back-end request): it is pinned to that guest.
                outgoing.guestOpens(segment, key: key, now: now, fromDrainingGuest: true)
                return .forward
            }
        }
        // (The new guest's key first: its local port may be one the old guest used too.)
        guard var slot = splicer.reopened(key) ?? log.lookup(key) else {
            guard speaksFor(pinned: false) else { return .drop }
            untracked.add(1, ordering: .relaxed)
            return .forward
        }
        guard speaksFor(pinned: isPinned(slot)) else { return .drop }
        // Relay servers: the new guest's first bytes on a connection it opened may re-send a
        // logged connection's request; then it carries on as that one (Splicer+Outgoing.swift).
        var oldestInFlight: UInt64?  // (found only when a claim needs it)
        if segment.payloadLength > 0, !isPinned(slot),
            let claimed = splicer.claim(
                slot, segment, now: now, sink: sink,
                mayBeReSent: { waiting in
                    let oldest = oldestInFlight ?? oldestClientExchangeInFlight()
                    oldestInFlight = oldest
                    return mayBeReSent(waiting, oldestInFlight: oldest)
                })
        {
            close(slot)
            slot = claimed
            flows[slot.index].kept = false  // (a kept one is live again)
        }
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
        // Every server byte a client holds must be under the log's checksum, whose end a replay
        // checks and resumes from. A segment after bytes the relay never saw (lost on the guest's
        // link, or read by a daemon killed before it logged them) would put the client past that
        // end for good: the guest's retransmission of the hole comes, the bytes after it that
        // passed do not. So it waits, as after a loss: the guest sends it again after the hole.
        if length > 0 || fin, log.startsPastServerStream(slot, at: sequence) {
            pastAHole.add(1, ordering: .relaxed)
            return .drop
        }
        if length > 0, flows[slot.index].guestInitiated { flows[slot.index].requestStamp = outgoing.currentStamp }
        if length > 0 || fin {
            let end = sequence &+ UInt32(truncatingIfNeeded: length) &+ (fin ? 1 : 0)
            var advance: StreamAdvance?
            if length > 0, let skip = log.serverStreamSkip(slot, start: sequence, count: length), skip < length {
                advance = checksum(
                    slot, UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(segment.payload)[skip...]))
            }
            log.noteServerSent(slot, endSeq: end, fin: fin, stream: advance)
            if fin { flows[slot.index].serverFINEnd = end }
        }
        if let stamps = segment.options.timestamps {
            log.noteTimestamps(slot, fromClient: false, tsval: stamps.value, tsecr: stamps.echoReply)
        }
        // Client closed first and the server acknowledges its FIN after sending its own.
        if flags.contains(.ack), flows[slot.index].serverFINEnd != nil, let end = flows[slot.index].clientFINEnd,
            SequenceMath.isAtOrAfter(segment.acknowledgmentNumber.rawValue, end)
        {
            closeOrKeep(slot)
        }
        return .forward
    }

    /// Whether the guest's SYN `segment` opens a new connection over the record in `slot` of
    /// an earlier one from the same port: a guest-initiated record no replay holds, with
    /// another ISN (a retransmitted SYN has the record's own).
    private func isEndedEarlier(_ slot: Slot, by segment: TCPSegmentView) -> Bool {
        flows[slot.index].serial == slot.serial && flows[slot.index].guestInitiated
            && splicer.phase(of: slot) == .idle && log.current(slot).serverISN != segment.sequenceNumber.rawValue
    }

    // MARK: Bounding the log

    /// Feeds newly logged client bytes to the connection's HTTP tracker, if it has one.
    private func feedRequests(_ slot: Slot, _ bytes: UnsafeRawBufferPointer) {
        if case .outgoing(_, _) = flows[slot.index].framing { return feedOutgoingResponses(slot, bytes) }
        guard case .following(let clientBase, let serverBase) = flows[slot.index].framing else { return }
        trackers[slot.index].feedRequests(bytes) { exchange in
            completed(slot, exchange, clientBase: clientBase, serverBase: serverBase)
        }
        if let stop = trackers[slot.index].stop { stopFollowing(slot, because: stop) }
        trimWhatIsDue(slot)
    }

    /// Extends the server stream checksum over `bytes` (the part of a server segment that
    /// continues it): through the HTTP tracker for a followed connection (masking `Date:` values,
    /// and taking a checkpoint at each response's end), else as they are, with a checkpoint at
    /// the segment's end (and at a pending explicit trim inside it).
    private func checksum(_ slot: Slot, _ segmentBytes: UnsafeRawBufferPointer) -> StreamAdvance {
        let index = slot.index
        var start = log.position(slot).serverChecked
        var crc = log.serverStreamCRC(slot)
        var bytes = segmentBytes
        if case .resuming(let clientBase, let serverBase) = flows[index].framing {
            // The rest of a body a restarted relay found in progress (no `Date:` in it), then
            // the framing again from its end, which is a boundary.
            let body = Int(min(UInt64(bytes.count), serverBase - start))
            crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[..<body]), continuing: crc)
            start += UInt64(body)
            bytes = UnsafeRawBufferPointer(rebasing: bytes[body...])
            if start == serverBase { resumeFollowing(slot, clientBase: clientBase, serverBase: serverBase, crc: crc) }
        }
        // (No TCP segment outgrows the scratch; should one, its bytes are checksummed unmasked.)
        if case .following = flows[index].framing, bytes.count > maskScratch.count { stopFollowing(slot, because: nil) }
        switch flows[index].framing {
        case .following(let clientBase, let serverBase):
            var done = 0
            trackers[index].feedResponses(
                bytes, masked: maskScratch,
                responseEnd: { position in
                    crc = CRC32C.checksum(
                        UnsafeRawBufferPointer(rebasing: maskScratch[done..<position]), continuing: crc)
                    done = position
                    flows[index].trims.checkpoint(start + UInt64(position), crc: crc)
                    responseHeads.begin(slot, at: start + UInt64(position))
                },
                exchange: { exchange in completed(slot, exchange, clientBase: clientBase, serverBase: serverBase) })
            responseHeads.keep(slot, bytes, at: start)
            crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: maskScratch[done..<bytes.count]), continuing: crc)
            if let stop = trackers[index].stop { stopFollowing(slot, because: stop) }
            noteResponseInProgress(slot, clientBase: clientBase, serverBase: serverBase)
        case .none:
            if let split = flows[index].trims.split(from: start, count: bytes.count) {
                crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[..<split]), continuing: crc)
                flows[index].trims.resolvePending(crc: crc)
                crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[split...]), continuing: crc)
            } else {
                crc = CRC32C.checksum(bytes, continuing: crc)
            }
            flows[index].trims.checkpoint(start + UInt64(bytes.count), crc: crc)
        case .stopped, .resuming:
            crc = CRC32C.checksum(bytes, continuing: crc)
        case .outgoing(_, _):
            crc = CRC32C.checksum(bytes, continuing: crc)
            flows[index].trims.checkpoint(start + UInt64(bytes.count), crc: crc)
            outgoing.guestSent(slot, bytes, at: start)
            feedOutgoingRequests(slot, bytes)
        }
        return StreamAdvance(bytes: segmentBytes.count, crc: crc)
    }

    /// Notes a response whose body is in progress in the log, once per response: a relay that
    /// restarts inside it takes the framing up again at its end.
    private func noteResponseInProgress(_ slot: Slot, clientBase: UInt64, serverBase: UInt64) {
        guard let response = trackers[slot.index].responseInProgress,
            serverBase + response.end != flows[slot.index].notedResponseEnd
        else { return }
        flows[slot.index].notedResponseEnd = serverBase + response.end
        log.noteResponse(
            slot, requestEnd: clientBase + response.requestEnd, bodyStart: serverBase + response.bodyStart,
            end: serverBase + response.end)
    }

    /// The tracker found an exchange complete: offer its end as a trim boundary.
    private func completed(_ slot: Slot, _ exchange: HTTPExchange, clientBase: UInt64, serverBase: UInt64) {
        exchanges.add(1, ordering: .relaxed)
        flows[slot.index].trims.propose(
            client: clientBase + exchange.requestEnd, server: serverBase + exchange.responseEnd)
    }

    /// The connection's HTTP framing is no longer followed (`reason` nil: it became unprotected,
    /// or a segment did not fit the masking buffer). Masking ends where the tracker's response
    /// framing ended; boundaries found before still count.
    private func stopFollowing(_ slot: Slot, because reason: HTTPStop?) {
        guard case .following(_, let serverBase) = flows[slot.index].framing else { return }
        flows[slot.index].framing = .stopped
        let end = serverBase + (trackers[slot.index].responseFramingEnd ?? trackers[slot.index].responseBytes)
        log.stopFraming(slot, atServerOffset: end)
        if let reason {
            stops.withLock { $0[reason.description, default: 0] += 1 }
            logger.info(
                "connection falls back to whole-history replay",
                metadata: ["connection": "\(log.current(slot).key)", "reason": "\(reason)"])
        }
    }

    /// Trims the log to the furthest boundary the client has now acknowledged.
    private func trimWhatIsDue(_ slot: Slot) {
        // (Not while a replay works from the current start; the boundaries wait for the splice.)
        guard !flows[slot.index].trims.isEmpty, splicer.phase(of: slot) == .idle || splicer.phase(of: slot) == .spliced
        else { return }
        let position = log.position(slot)
        guard position.isProtected,
            let boundary = flows[slot.index].trims.due(
                serverAcked: position.serverAcked, clientLogged: position.clientLogged)
        else { return }
        log.trim(slot, to: boundary)
        if isBetweenExchanges(slot) { flows[slot.index].exchangeBegan = 0 }
    }

    /// A guest says a connection is complete up to (client offset, server offset) in its own
    /// view of the connection (bytes it read and wrote since it accepted it), and that a new
    /// connection at that point is equivalent (FTVMTrim; docs/trim-api.md). Only the guest that
    /// serves the connection may say so.
    func explicitTrim(_ request: TrimRequest, fromDrainingGuest: Bool) {
        explicitTrims.add(1, ordering: .relaxed)
        let key = FlowKey(
            clientAddress: request.clientAddress, clientPort: request.clientPort, serverAddress: service.rawValue,
            serverPort: request.serverPort)
        guard let slot = log.lookup(key), !draining || isPinned(slot) == fromDrainingGuest,
            splicer.phase(of: slot) == .idle || splicer.phase(of: slot) == .spliced
        else {
            explicitTrimsMissed.add(1, ordering: .relaxed)
            return
        }
        let translation = log.current(slot).translation
        let client = (translation?.servingClientBase ?? 0) + request.clientOffset
        let server = (translation?.servingServerBase ?? 0) + request.serverOffset
        let position = log.position(slot)
        if server > position.serverChecked {
            flows[slot.index].trims.expect(client: client, server: server)
        } else if !flows[slot.index].trims.propose(client: client, server: server) {
            explicitTrimsMissed.add(1, ordering: .relaxed)
            return
        }
        explicitTrimsUsed.add(1, ordering: .relaxed)
        trimWhatIsDue(slot)
    }

    /// Reclaims the records of connections whose client has been silent past the idle bound.
    /// Cheap enough to call every loop turn; it scans once a second.
    func sweep(now: UInt64) {
        outgoing.sweep(now: now)
        guard now &- lastSweep >= 1_000_000_000 else { return }
        lastSweep = now
        trimOutgoing()
        log.forEachLive { slot in
            let phase = splicer.phase(of: slot)
            guard phase == .idle || phase == .spliced, flows[slot.index].serial == slot.serial,
                now &- flows[slot.index].lastClientFrame > policy.idleReclaimNanos
            else { return }
            logger.info("idle connection reclaimed", metadata: ["connection": "\(log.current(slot).key)"])
            splicer.forget(slot)
            log.reclaim(slot)
            flows[slot.index] = Flow()
        }
    }

    /// Ends a connection: its replay state, then its record.
    func close(_ slot: Slot) {
        splicer.forget(slot)
        log.close(slot)
        flows[slot.index] = Flow()
        responseHeads.forget(slot)
    }

    /// Clears the FIN of a segment that carries data and a FIN (no RST); false, changing
    /// nothing, for any other frame.
    func withoutFIN(_ frame: UnsafeMutableRawBufferPointer, partialChecksum: Bool = false) -> Bool {
        guard var segment = tcp(frame, partialChecksum: partialChecksum), segment.payloadLength > 0,
            segment.flags.contains(.fin),
            !segment.flags.contains(.rst)
        else { return false }
        segment.clearFlags(.fin)
        return true
    }

    private func tcp(_ frame: UnsafeMutableRawBufferPointer, partialChecksum: Bool) -> TCPSegmentView? {
        switch FrameClass.classify(frame) {
        case .ipv4TCP(var segment):
            segment.checksumIsPartial = partialChecksum
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
