import FTVMLog
import FTVMWire

/// The local port of a relay server's connection as the serving guest opened it, and as the end
/// server knows it (the logged one): the splice rewrites one into the other. And how the end
/// server's sequence numbers and TSvals as the guest sees them differ from the logged ones: the
/// guest's own connection got its SYN/ACK from the end server, with another ISN and TSval.
struct ReopenedPorts: Equatable {
    var serving: UInt16
    var logged: UInt16
    var shift: UInt32 = 0
    /// An end server's TSval clock is its own on each connection (Linux adds a random offset per
    /// connection), so a connection that carries on as a logged one keeps the clock its SYN/ACK
    /// set: without the shift the record's TSvals may be older than the SYN/ACK's, and the guest
    /// drops every segment (PAWS, RFC 7323 §5).
    var timestampShift: UInt32 = 0
    /// The window scale the end server uses (its logged SYN/ACK's), and the one the serving
    /// guest was told (its own SYN/ACK's): the end server's windows are rescaled when they differ
    /// (seen: a back end whose receive buffer sysctl changed between the two handshakes).
    var endServerScale: UInt8 = 0
    var guestViewScale: UInt8 = 0
}

/// What a replay keeps of the guest's SYN (or SYN/ACK).
struct GuestSYN: Equatable {
    var isn: UInt32
    var options: TCPOptions
    var window: UInt16

    init(_ segment: TCPSegmentView) {
        isn = segment.sequenceNumber.rawValue
        options = segment.options
        window = segment.window
    }

    init(isn: UInt32, options: TCPOptions, window: UInt16) {
        self.isn = isn
        self.options = options
        self.window = window
    }
}

extension ReopenedPorts {
    /// The ports and shifts of a spliced connection as the log keeps them (a restarted daemon
    /// carries on from them), or nil for a client's connection.
    init?(_ translation: Translation, _ record: ConnectionRecord) {
        guard record.guestInitiated, translation.servingPort != 0 else { return nil }
        let scale = record.clientOptions.windowScale ?? 0
        self.init(
            serving: translation.servingPort, logged: record.key.serverPort, shift: translation.clientSequenceShift,
            timestampShift: translation.clientTimestampShift, endServerScale: scale,
            guestViewScale: translation.clientWindowScaleSeen ?? scale)
    }

    /// `translation` with these ports and shifts, for the log.
    func kept(in translation: Translation) -> Translation {
        var kept = translation
        kept.servingPort = serving
        kept.clientSequenceShift = shift
        kept.clientTimestampShift = timestampShift
        kept.clientWindowScaleSeen = guestViewScale == endServerScale ? nil : guestViewScale
        return kept
    }
}

/// Replay for relay servers (docs/relay-servers.md): connections the guest opened itself, to an
/// end server. The roles in their records mirror a client connection's (the end server is the
/// "client": its bytes are logged before the guest sees them; the guest is the "server": its
/// stream is checksummed), so once the new guest's own connection is known to re-send a logged
/// one the catch-up and the splice are the client side's own. Only the opening differs:
///
/// 1. at a failover each logged connection *waits* (`awaitingReopen`): the end server's
///    segments are logged and dropped, so the new guest's kernel never answers them with a RST;
/// 2. the new guest, re-running a replayed client request, opens its own connection to the same
///    end server, for real: a SYN cannot tell which request will follow, and a request that
///    never reached the end server must reach it now;
/// 3. its first bytes decide (`claim`): when they begin with the request a waiting connection
///    carried (from its replay start or a later exchange boundary the log still holds), the new
///    connection is reset toward the end server, which saw a handshake and nothing else, and
///    the guest's connection catches up as the waiting one: the bytes it regenerates are checked
///    against what the end server already received, the logged end-server bytes injected once
///    they all matched, then it is spliced, its port, sequence numbers and TSvals translated;
///    otherwise it stays the new connection it is;
/// 4. a waiting connection nobody claimed within `reopenBoundNanos` is closed toward its end
///    server: a FIN when the end server had every byte the old guest sent (its answering FIN is
///    acknowledged), else a RST.
extension Splicer {
    /// A logged guest-initiated connection joins the replay: it waits for the new guest.
    func awaitReopen(_ slot: Slot, _ record: ConnectionRecord, now: UInt64, sink: FrameSink) {
        report.withLock { $0.connections += 1 }
        totals.withLock { $0.replayed += 1 }
        if record.protection != .protected || record.rolledBack {
            waitAgain(slot, now: now)
            resetConnection(
                slot, record.rolledBack ? .rolledBack : .unprotected,
                reason: "the log no longer held this relay-server connection's history (\(record.protection))",
                sink: sink)
            return
        }
        waitAgain(slot, now: now)
        awaitingReopen.removeAll { $0 == slot }  // (still waiting from a replay just before)
        awaitingReopen.append(slot)
    }

    /// The new guest reset a connection it had opened again before it was spliced: nginx gives
    /// up on its upstream connection when its own client goes (a daemon restarted inside a
    /// takeover resets the client connections the first one had begun to replay), and asks again
    /// on another. The record waits again, so that one is recognised too; nothing reaches the
    /// end server.
    func reopenedConnectionReset(_ slot: Slot, now: UInt64) {
        logger.info(
            "the new guest reset a relay-server connection it had opened again: it waits for another",
            metadata: ["connection": "\(log.current(slot).key)"])
        waitAgain(slot, now: now)
        awaitingReopen.append(slot)
        report.withLock { $0.pending = pendingCount }
    }

    /// Puts `slot` in the waiting phase, leaving any catch-up of it.
    private func waitAgain(_ slot: Slot, now: UInt64) {
        forgetReopened(slot)
        if splices[slot.index].serial == slot.serial,
            splices[slot.index].phase == .handshaking || splices[slot.index].phase == .catchingUp
        {
            settle(slot.index)  // an earlier catch-up, given up
        }
        splices[slot.index] = Splice(phase: .awaitingReopen, serial: slot.serial, startedAt: now, lastProgress: now)
    }

    /// The new guest opens a connection (`key`: its end server as the client, its own port as
    /// the server's): it goes to the end server as a new one. A waiting connection from the very
    /// port the new guest picked is reset toward its end server first, which would otherwise take
    /// the SYN for a segment of that connection.
    func newGuestOpens(_ key: FlowKey, sink: FrameSink) {
        guard !awaitingReopen.isEmpty, let slot = log.lookup(key),
            phase(of: slot) == .awaitingReopen || phase(of: slot) == .closingUnclaimed
        else { return }
        let record = log.current(slot)
        toClient(record, sequence: record.serverAckedByClient, flags: [.rst, .ack], sink: sink)
        awaitingReopen.removeAll { $0 == slot }
        finishUnclaimed(
            slot, record, how: "reset toward its end server (the new guest opened a connection from its port)")
    }

    /// Where connections the relay renames get their port toward the end server: above Linux's
    /// default ephemeral range (32768-60999), where no guest's own connections come from.
    static let renamedPorts: ClosedRange<UInt16> = 61000...65535

    /// The port toward its end server for a connection the new guest opens (`key`, its view), or
    /// nil for its own. A connection opened again keeps the old guest's port toward the end
    /// server while the new guest serves it from another, so the new guest may open a connection
    /// from that very port: the end server would take the SYN for a segment of the live one (its
    /// challenge ACK reaching that one), the new connection's SYNs would go unanswered until the
    /// guest gave up (nginx answered `504` after 60 s). Such a connection gets a free port from
    /// `renamedPorts` instead, and is translated like a connection opened again.
    ///
    /// A connection opened again that the guest served from `key`'s port is over for the guest
    /// (its kernel never opens a connection over a live one; nginx reuses the port of an ended
    /// back-end connection at once): its key is forgotten, or the new connection's segments went
    /// to it, to the end server as the old one's, and the end server's RST ended the new one
    /// (nginx answered `502`).
    func portTowardEndServer(forNewGuestConnection key: FlowKey, isn: UInt32) -> UInt16? {
        if let port = renamedSYNs[key] { return port }  // (a retransmitted SYN)
        if let slot = reopened(key), let ports = splices[slot.index].ports {
            // (A renamed connection's record has the guest's own ISN: its SYN again.)
            if log.current(slot).serverISN == isn { return ports.logged }
            forgetReopened(slot)
        }
        guard let taken = log.lookup(key), phase(of: taken) != .idle, let ports = splices[taken.index].ports,
            ports.serving != key.serverPort
        else { return nil }
        var candidate = key
        for _ in Self.renamedPorts {
            candidate.serverPort = nextRenamedPort
            nextRenamedPort =
                nextRenamedPort == Self.renamedPorts.upperBound ? Self.renamedPorts.lowerBound : nextRenamedPort + 1
            guard log.lookup(candidate) == nil, !renamedSYNs.values.contains(candidate.serverPort) else { continue }
            renamedSYNs[key] = candidate.serverPort
            logger.info(
                "a new guest connection comes from the port a connection opened again has toward its end server: it gets another",
                metadata: [
                    "connection": "\(key)", "port": "\(candidate.serverPort)", "taken by": "\(log.current(taken).key)",
                ])
            return candidate.serverPort
        }
        return nil
    }

    /// The end server answers a renamed connection's SYN (`slot`, just logged under the port it
    /// sees): from now on the connection is translated between the guest's port and that one, as
    /// one opened again is (a restarted daemon too: the log keeps the ports), and `segment` goes
    /// to the guest's port.
    func renamedConnectionOpened(_ slot: Slot, _ segment: inout TCPSegmentView) {
        let record = log.current(slot)
        guard
            let guestKey = renamedSYNs.first(where: {
                $0.value == record.key.serverPort && $0.key.clientAddress == record.key.clientAddress
                    && $0.key.clientPort == record.key.clientPort
            })?.key
        else { return }
        renamedSYNs[guestKey] = nil
        let endScale = record.clientOptions.windowScale ?? 0
        let guestScale = record.serverOptions?.windowScale ?? 0
        let ports = ReopenedPorts(
            serving: guestKey.serverPort, logged: record.key.serverPort, endServerScale: endScale,
            guestViewScale: endScale)
        let translation = Translation(sequenceDelta: 0, timestampDelta: 0, servingWindowScale: guestScale)
        splices[slot.index] = Splice(
            phase: .spliced, serial: slot.serial, translation: translation, clientViewWindowScale: guestScale,
            timestamps: record.serverTimestamps != nil, guestWindowScale: guestScale)
        splices[slot.index].ports = ports
        reopenedKeys[guestKey] = slot
        log.setTranslation(slot, ports.kept(in: translation))
        toReopened(&segment, ports)
    }

    /// The first bytes of a connection the new guest opened (`fresh`: logged as a new connection
    /// when the end server answered its SYN) while logged ones to that end server wait. When they
    /// begin with what a waiting connection's guest sent since a place a replay may start it, the
    /// guest re-sends that connection's request: `fresh` is reset toward the end server, and the
    /// guest's connection catches up as the waiting one from there. Returns that one's slot; nil
    /// when the bytes are a request no waiting connection carried, which passes on `fresh`.
    ///
    /// `mayBeReSent` says whether a client exchange the replay re-runs may have caused a waiting
    /// connection's requests: a later one's bytes are a new request even when they are the same.
    func claim(
        _ fresh: Slot, _ segment: TCPSegmentView, now: UInt64, sink: FrameSink, mayBeReSent: (Slot) -> Bool
    ) -> Slot? {
        guard !awaitingReopen.isEmpty, phase(of: fresh) == .idle else { return nil }
        let opened = log.current(fresh)
        guard opened.guestInitiated, opened.clientBytesLogged == 0, opened.serverStream.byteCount == 0,
            let guestISN = opened.serverISN, let guestOptions = opened.serverOptions,
            segment.sequenceNumber.rawValue == guestISN &+ 1
        else { return nil }
        let payload = UnsafeRawBufferPointer(segment.payload)
        for waitingRecord in waiting(toward: opened.key) where mayBeReSent(waitingRecord.slot) {
            guard let start = resentStart(waitingRecord, payload) else { continue }
            guard opened.clientOptions.timestamps == waitingRecord.clientOptions.timestamps else {
                logger.warning(
                    "a new guest connection re-sends a logged request, but its end server answered it with timestamps one way and the logged one the other: it stays a new one",
                    metadata: ["connection": "\(waitingRecord.key)", "new": "\(opened.key)"])
                return nil
            }
            if start != waitingRecord.replayStart {
                // A pooled connection's earlier exchanges are done: the guest re-sends a later one.
                guard log.trim(waitingRecord.slot, to: start) else { continue }
                outgoing.trimmed(waitingRecord.slot, to: start.serverOffset)
            }
            let record = log.current(waitingRecord.slot)
            var options = TCPOptions(
                maximumSegmentSize: guestOptions.maximumSegmentSize, windowScale: guestOptions.windowScale,
                sackPermitted: guestOptions.sackPermitted)
            if guestOptions.timestamps { options.timestamps = opened.serverTimestamps }
            let window = UInt64(segment.window) << UInt64(guestOptions.windowScale ?? 0)
            let syn = GuestSYN(isn: guestISN, options: options, window: UInt16(min(window, 0xFFFF)))
            var ports = ReopenedPorts(
                serving: opened.key.serverPort, logged: record.key.serverPort,
                shift: opened.clientISN &- record.replayClientISN,
                endServerScale: record.clientOptions.windowScale ?? 0,
                guestViewScale: opened.clientOptions.windowScale ?? 0)
            if let seen = opened.clientTimestamps?.value, let next = record.clientTimestamps?.value {
                ports.timestampShift = seen &- next
            }
            toClient(opened, sequence: guestISN &+ 1, flags: [.rst, .ack], sink: sink)
            awaitingReopen.removeAll { $0 == record.slot }
            splices[record.slot.index] = reopening(record.slot, record, syn: syn, now: now, ports: ports)
            reopenedKeys[opened.key] = record.slot
            active.append(record.slot.index)
            pendingCount += 1
            report.withLock { $0.pending = pendingCount }
            logger.info(
                "relay-server connection opened again",
                metadata: [
                    "connection": "\(record.key)", "serving port": "\(opened.key.serverPort)",
                    "from guest byte": "\(record.replayStart.serverOffset)", "request": "\(Self.firstLine(payload))",
                ])
            return record.slot
        }
        logger.info(
            "a new guest connection to an end server re-sends none of the logged ones: a new connection",
            metadata: [
                "connection": "\(opened.key)", "first bytes": "\(payload.count)",
                "request": "\(Self.firstLine(payload))",
                "waiting":
                    "\(waiting(toward: opened.key).map { "\($0.key.serverPort): \($0.replayedServerStream.byteCount) bytes" })",
            ])
        return nil
    }

    /// The first line of what a new guest connection sent (an HTTP request line), at most 100
    /// bytes, anything but printable ASCII shown as `.`: which request went where, in the log.
    static func firstLine(_ payload: UnsafeRawBufferPointer) -> String {
        let line = payload.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }.prefix(100)
        return String(decoding: line.map { (0x20..<0x7F).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
    }

    /// Where the guest's stream of `record` began with `payload`: its replay start, or a later
    /// exchange boundary the log still holds. The whole stream from there must be in `payload`
    /// (same length and checksum), or, for a request longer than the segment (a large POST), its
    /// first `RequestHeads.length` bytes, whose checksum the relay kept.
    private func resentStart(_ record: ConnectionRecord, _ payload: UnsafeRawBufferPointer) -> ReplayStart? {
        let starts = [record.replayStart] + outgoing.boundaries(record.slot, after: record.replayStart)
        return starts.first { start in
            let length = record.serverStream.byteCount - start.serverOffset
            guard length > 0 else { return false }
            if length <= UInt64(payload.count) {
                let crc = CRC32C.suffix(of: record.serverStream.crc, prefix: start.serverCRC, suffixLength: length)
                return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: payload[..<Int(length)])) == crc
            }
            guard payload.count >= RequestHeads.length,
                let head = outgoing.requestHead(record, from: start.serverOffset)
            else { return false }
            return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: payload[..<RequestHeads.length])) == head
        }
    }

    /// The splice of `slot` catching up as the guest's connection that began with `syn`.
    private func reopening(
        _ slot: Slot, _ record: ConnectionRecord, syn: GuestSYN, now: UInt64, ports: ReopenedPorts
    )
        -> Splice
    {
        var splice = Splice(phase: .catchingUp, serial: slot.serial)
        splice.clientViewWindowScale = record.serverOptions?.windowScale ?? 0
        splice.timestamps = record.serverTimestamps != nil && record.clientTimestamps != nil
        splice.startedAt = now
        splice = catchingUp(splice, record, guestSYN: syn, now: now)
        splice.ports = ports
        splice.injectionHeld = record.replayedServerStream.byteCount > 0
        return splice
    }

    /// The waiting connections a new guest's connection to `key`'s end server may re-send, oldest
    /// first. One whose end server has answered and closed counts too (nginx without upstream
    /// keep-alive: the back end closes after each answer, which may all be logged before the
    /// client had a byte of it); the catch-up injects its FIN after the answer.
    private func waiting(toward key: FlowKey) -> [ConnectionRecord] {
        awaitingReopen.compactMap { slot in
            guard phase(of: slot) == .awaitingReopen else { return nil }
            let record = log.current(slot)
            guard record.key.clientAddress == key.clientAddress, record.key.clientPort == key.clientPort else {
                return nil
            }
            return record
        }
    }

    /// A segment from a guest on a connection it opened again, in the logged view: its ACK and
    /// SACK edges of end-server bytes, and its echo of the end server's TSval, unshifted.
    func fromReopened(_ segment: inout TCPSegmentView, _ ports: ReopenedPorts) {
        if ports.shift != 0 {
            if segment.flags.contains(.ack) {
                segment.setAcknowledgmentNumber(segment.acknowledgmentNumber &- ports.shift)
            }
            segment.shiftSACKBlocks(by: 0 &- ports.shift)
        }
        if ports.timestampShift != 0, let stamps = segment.options.timestamps {
            segment.setTimestamps(
                TCPTimestamps(value: stamps.value, echoReply: stamps.echoReply &- ports.timestampShift))
        }
    }

    /// An end-server segment of a spliced connection opened again, as its guest must see it.
    func toReopened(_ segment: inout TCPSegmentView, _ ports: ReopenedPorts) {
        segment.setPorts(source: segment.sourcePort, destination: ports.serving)
        if ports.guestViewScale != ports.endServerScale, !segment.flags.contains(.syn) {
            let bytes = UInt64(segment.window) << UInt64(ports.endServerScale)
            segment.setWindow(UInt16(min(bytes >> UInt64(ports.guestViewScale), 0xFFFF)))
        }
        if ports.shift != 0 { segment.setSequenceNumber(segment.sequenceNumber &+ ports.shift) }
        if ports.timestampShift != 0, let stamps = segment.options.timestamps {
            segment.setTimestamps(
                TCPTimestamps(value: stamps.value &+ ports.timestampShift, echoReply: stamps.echoReply))
        }
    }

    /// The slot a new guest's own key maps to, once it opened a logged connection again.
    func reopened(_ key: FlowKey) -> Slot? {
        guard let slot = reopenedKeys[key], phase(of: slot) != .idle else { return nil }
        return slot
    }

    /// Drops the new guest's key of a connection that ends or replays again.
    func forgetReopened(_ slot: Slot) {
        guard let ports = splices[slot.index].ports, splices[slot.index].serial == slot.serial else { return }
        var key = log.current(slot).key
        key.serverPort = ports.serving
        if reopenedKeys[key] == slot { reopenedKeys[key] = nil }
    }

    /// A segment from the end server of a connection nobody serves now: logged already (the
    /// new guest may open it again), dropped. While it is being closed, its FIN is acknowledged
    /// and that ends the connection.
    func endServerWhileUnclaimed(_ slot: Slot, _ segment: TCPSegmentView, sink: FrameSink) {
        guard splices[slot.index].phase == .closingUnclaimed, segment.flags.contains(.fin) else { return }
        let record = log.current(slot)
        toClient(record, sequence: record.serverSendMax &+ 1, flags: .ack, sink: sink)
        finishUnclaimed(slot, record, how: "closed toward its end server")
    }

    /// The waiting connections for which `noneReSends` holds are closed at the next tick: no
    /// client exchange in flight can have caused their requests (the ones the replay re-ran are
    /// done), so nothing the new guest sends from now on re-sends them.
    func stopWaiting(_ noneReSends: (Slot) -> Bool) {
        for slot in awaitingReopen where phase(of: slot) == .awaitingReopen && noneReSends(slot) {
            splices[slot.index].noneReSends = true
        }
    }

    /// Closes the waiting connections whose bound passed or that nobody can re-send any more
    /// (one FIN each, or a RST when the end server lacks bytes the old guest sent), and resets
    /// those whose close went unanswered.
    func closeUnclaimed(now: UInt64, sink: FrameSink) {
        guard !awaitingReopen.isEmpty else { return }
        var position = awaitingReopen.count - 1
        while position >= 0 {
            defer { position -= 1 }
            let slot = awaitingReopen[position]
            let splice = splices[slot.index]
            guard splice.serial == slot.serial, splice.phase == .awaitingReopen || splice.phase == .closingUnclaimed
            else {
                awaitingReopen.remove(at: position)
                continue
            }
            guard now &- splice.startedAt > reopenBoundNanos || (splice.phase == .awaitingReopen && splice.noneReSends)
            else { continue }
            let record = log.current(slot)
            if record.clientFINLogged, record.serverFINSent {  // it had ended: nothing to tell the end server
                awaitingReopen.remove(at: position)
                finishUnclaimed(slot, record, how: "freed (it had ended before the failure)")
                continue
            }
            if splice.phase == .awaitingReopen, record.serverAckedByClient == record.serverSendMax,
                !record.serverFINSent
            {
                toClient(record, sequence: record.serverSendMax, flags: [.fin, .ack], sink: sink)
                if record.clientFINLogged {  // it had closed its side already: both are done
                    awaitingReopen.remove(at: position)
                    finishUnclaimed(slot, record, how: "closed toward its end server")
                    continue
                }
                splices[slot.index].phase = .closingUnclaimed
                splices[slot.index].startedAt = now
                continue
            }
            toClient(record, sequence: record.serverAckedByClient, flags: [.rst, .ack], sink: sink)
            awaitingReopen.remove(at: position)
            finishUnclaimed(slot, record, how: "reset toward its end server")
        }
    }

    private func finishUnclaimed(_ slot: Slot, _ record: ConnectionRecord, how: String) {
        logger.info(
            "relay-server connection not opened again: \(how)",
            metadata: ["connection": "\(record.key)"])
        totals.withLock { $0.unclaimed += 1 }
        splices[slot.index] = Splice()
        log.close(slot)
    }
}
