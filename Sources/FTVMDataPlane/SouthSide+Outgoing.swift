import FTVMHTTP
import FTVMLog

/// Bounding the log of relay servers' connections (docs/relay-servers.md, "Bounded").
///
/// A guest-initiated connection is framed as HTTP/1.x with the roles mirrored: the guest's
/// stream carries the requests, the end server's (logged) bytes the responses. An exchange the
/// end server has acknowledged and answered in full is a boundary, like a client exchange. But
/// it may leave the log only once no client exchange that could have caused it is still in
/// flight: a replay re-runs every client exchange in flight, and a re-run one would send its
/// back-end request again, which a trimmed log could no longer recognise as already sent.
///
/// So every client exchange is stamped with a count when its first byte is logged, and every
/// outgoing boundary with the count when its exchange completed. A boundary is trimmed to once
/// every client exchange in flight is younger than it (their stamps are larger). Checked once a
/// second (`sweep`); trims lag by that much, which costs nothing but log space, and a replay
/// runs them first (`beginReplay`).
///
/// The same stamps decide what a replay may match: a logged connection is re-sent only by a
/// client exchange the replay re-runs, so it is matched only while an exchange that began before
/// its request is still in flight (`mayBeReSent`), never by a later request with the same bytes.
extension SouthSide {
    /// A client's bytes were logged: its exchange in flight, if it had none, starts now.
    func noteClientExchange(_ slot: Slot) {
        guard !flows[slot.index].guestInitiated, flows[slot.index].exchangeBegan == 0 else { return }
        flows[slot.index].exchangeBegan = outgoing.beginClientExchange()
    }

    /// The guest's bytes on a connection it opened: requests.
    func feedOutgoingRequests(_ slot: Slot, _ bytes: UnsafeRawBufferPointer) {
        trackers[slot.index].feedRequests(bytes) { exchange in outgoingExchangeCompleted(slot, exchange) }
        if let stop = trackers[slot.index].stop { return stopFollowingOutgoing(slot, because: stop) }
        noteRequestInFlight(slot)
    }

    /// Notes in the log, once per request, the request in flight when it is the only one and its
    /// exchange starts at the latest boundary the log holds: a relay that restarts inside that
    /// exchange takes the framing up again after the request (`SouthSide.adoptOutgoing`).
    private func noteRequestInFlight(_ slot: Slot) {
        guard case .outgoing(let requestBase, let responseBase) = flows[slot.index].framing,
            let request = trackers[slot.index].requestInFlight,
            requestBase + request.end != flows[slot.index].notedRequestEnd
        else { return }
        flows[slot.index].notedRequestEnd = requestBase + request.end
        let boundary = log.boundaryHints(slot).last ?? log.current(slot).replayStart
        guard boundary.serverOffset == requestBase + request.start.requestEnd,
            boundary.clientOffset == responseBase + request.start.responseEnd
        else { return }
        log.noteRequest(slot, after: boundary, requestEnd: requestBase + request.end, isHead: request.isHead)
    }

    /// Feeds a connection a restarted relay took up inside an exchange the end server's answer
    /// logged since its boundary (`SouthSide.adoptOutgoing`), a scratch buffer's worth at a time.
    func feedLoggedResponses(_ slot: Slot) {
        guard case .outgoing(_, let responseBase) = flows[slot.index].framing else { return }
        let logged = log.clientBytes(slot)
        var start = Int(responseBase - log.current(slot).replayStart.clientOffset)
        while start < logged.count, case .outgoing = flows[slot.index].framing {
            let end = min(logged.count, start + maskScratch.count)
            logged[start..<end].withUnsafeBytes { feedOutgoingResponses(slot, $0) }
            start = end
        }
    }

    /// The end server's bytes (logged): responses.
    func feedOutgoingResponses(_ slot: Slot, _ bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= maskScratch.count else { return stopFollowingOutgoing(slot, because: nil) }
        trackers[slot.index].feedResponses(
            bytes, masked: maskScratch, responseEnd: { _ in },
            exchange: { exchange in outgoingExchangeCompleted(slot, exchange) })
        if let stop = trackers[slot.index].stop { stopFollowingOutgoing(slot, because: stop) }
    }

    private func outgoingExchangeCompleted(_ slot: Slot, _ exchange: HTTPExchange) {
        guard case .outgoing(let requestBase, let responseBase) = flows[slot.index].framing else { return }
        let requestEnd = requestBase + exchange.requestEnd
        // The request's end must be a checkpoint of the guest's stream (a segment's end: a relay
        // server writes a request at once), else its checksum there is unknown.
        guard let crc = flows[slot.index].trims.crc(at: requestEnd) else { return }
        outgoing.offer(
            slot,
            ReplayStart(clientOffset: responseBase + exchange.responseEnd, serverOffset: requestEnd, serverCRC: crc))
    }

    private func stopFollowingOutgoing(_ slot: Slot, because reason: HTTPStop?) {
        flows[slot.index].framing = .stopped
        outgoing.noteFramingStopped(reason)
    }

    /// A connection ended by both FINs. A relay server's is kept in the log while a client
    /// exchange that may have caused it is in flight, as its trims are held: nginx without
    /// upstream keep-alive reads an answer to its end and closes the back-end connection before
    /// its client has all of it, and a replay that re-runs that client exchange sends the request
    /// again, which only the kept record recognises as sent. At most a quarter of the log's
    /// slots are kept so (past that it is freed at once, counted); `trimOutgoing` frees them.
    func closeOrKeep(_ slot: Slot) {
        guard flows[slot.index].guestInitiated, splicer.phase(of: slot) == .idle || splicer.phase(of: slot) == .spliced
        else { return close(slot) }
        guard keptCount < keptLimit else {
            outgoing.noteNotKept()
            return close(slot)
        }
        flows[slot.index].kept = true
        keptCount += 1
    }

    /// Starts a replay (`Splicer.begin`) once the relay servers' connections are trimmed to what
    /// the client exchanges in flight may re-send: the sweep's trims lag by up to a second, and
    /// a connection no replayed exchange can have caused must not wait to be opened again.
    package func beginReplay(now: UInt64, sink: FrameSink, only: ((Slot) -> Bool)? = nil) {
        trimOutgoing()
        splicer.begin(now: now, sink: sink, only: only)
    }

    /// The stamp of the oldest client exchange in flight (`UInt64.max`: none).
    func oldestClientExchangeInFlight() -> UInt64 {
        var oldest = UInt64.max
        log.forEachLive { slot in
            let flow = flows[slot.index]
            if flow.serial == slot.serial, flow.exchangeBegan != 0 { oldest = min(oldest, flow.exchangeBegan) }
        }
        return oldest
    }

    /// Whether a client exchange in flight may have caused the requests of the guest-initiated
    /// connection in `slot`: one that began before the guest sent them. A replay re-runs only
    /// the client exchanges in flight at the failure, so only their back-end requests may be
    /// re-sent as a logged connection's; any later one is new, even with the very same bytes (a
    /// client asking for the same URL again after the failover), and must reach the end server.
    func mayBeReSent(_ slot: Slot, oldestInFlight: UInt64) -> Bool {
        flows[slot.index].serial == slot.serial && flows[slot.index].requestStamp >= oldestInFlight
    }

    /// Trims each relay-server connection to its furthest boundary that is acknowledged and that
    /// no client exchange in flight may have caused, frees the ended ones kept for them, and
    /// tells the replay which waiting ones nobody can re-send any more. A replay runs it first.
    func trimOutgoing() {
        let oldestInFlight = oldestClientExchangeInFlight()
        splicer.stopWaiting { !mayBeReSent($0, oldestInFlight: oldestInFlight) }
        guard outgoing.hasBoundaries || keptCount > 0 else { return }
        if keptCount > 0 {
            keptCount = 0
            log.forEachLive { slot in
                guard flows[slot.index].serial == slot.serial, flows[slot.index].kept else { return }
                let phase = splicer.phase(of: slot)
                if flows[slot.index].requestStamp < oldestInFlight, phase == .idle || phase == .spliced {
                    close(slot)
                } else {
                    keptCount += 1
                }
            }
        }
        log.forEachLive { slot in
            guard flows[slot.index].serial == slot.serial, flows[slot.index].guestInitiated,
                case .outgoing(_, _) = flows[slot.index].framing,
                splicer.phase(of: slot) == .idle || splicer.phase(of: slot) == .spliced
            else { return }
            let position = log.position(slot)
            guard position.isProtected,
                let boundary = outgoing.due(
                    slot, before: oldestInFlight, serverAcked: position.serverAcked, clientLogged: position.clientLogged
                )
            else { return }
            log.trim(slot, to: boundary)
            outgoing.trimmed(slot, to: boundary.serverOffset)
        }
    }
}
