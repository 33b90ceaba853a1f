import FTVMLog
import FTVMWire

/// The local port of a relay server's connection as the serving guest opened it again, and as
/// the end server knows it (the logged one): the splice rewrites one into the other.
struct ReopenedPorts: Equatable {
    var serving: UInt16
    var logged: UInt16
}

/// Replay for relay servers (docs/relay-servers.md): connections the guest opened itself, to an
/// end server. The roles in their records mirror a client connection's (the end server is the
/// "client": its bytes are logged before the guest sees them; the guest is the "server": its
/// stream is checksummed), so once the new guest has opened such a connection again the
/// catch-up and the splice are the client side's own. Only the opening differs:
///
/// 1. at a failover each logged connection *waits* (`awaitingReopen`): the end server's
///    segments are logged and dropped, so the new guest's kernel never answers them with a RST;
/// 2. the new guest, re-running a replayed client request, sends a SYN to the same end server:
///    the oldest waiting connection to that address and port is matched to it. The relay
///    answers with a fake SYN/ACK carrying the end server's ISN (at the replay start) and
///    options, and the catch-up begins: the logged end-server bytes are injected, the bytes the
///    guest regenerates are checked against what the end server already received and dropped,
///    then the connection is spliced, its local port rewritten to the logged one;
/// 3. a waiting connection nobody opened within `reopenBoundNanos` is closed toward its end
///    server: a FIN when the end server had every byte the old guest sent (its answering FIN is
///    acknowledged), else a RST. A SYN that matches nothing passes as a new connection.
extension Splicer {
    /// A logged guest-initiated connection joins the replay: it waits for the new guest.
    func awaitReopen(_ slot: Slot, _ record: ConnectionRecord, now: UInt64, sink: FrameSink) {
        report.withLock { $0.connections += 1 }
        totals.withLock { $0.replayed += 1 }
        forgetReopened(slot)
        if splices[slot.index].serial == slot.serial,
            splices[slot.index].phase == .handshaking || splices[slot.index].phase == .catchingUp
        {
            settle(slot.index)  // an earlier replay's catch-up, given up for this one
        }
        splices[slot.index] = Splice(phase: .awaitingReopen, serial: slot.serial, startedAt: now, lastProgress: now)
        if record.protection != .protected || record.rolledBack {
            resetConnection(
                slot, record.rolledBack ? .rolledBack : .unprotected,
                reason: "the log no longer held this relay-server connection's history (\(record.protection))",
                sink: sink)
            return
        }
        awaitingReopen.append(slot)
    }

    /// A SYN from the new guest (`key`: its end server as the client, its own port as the
    /// server's). Returns true when the replay takes it: it opens a logged connection again (or
    /// repeats the SYN of one it opened), and the fake SYN/ACK has gone out.
    func reopen(_ segment: TCPSegmentView, key: FlowKey, now: UInt64, sink: FrameSink) -> Bool {
        if let slot = reopenedKeys[key] {
            // Its SYN again: the fake SYN/ACK was lost, or the guest gave the connection up.
            guard phase(of: slot) == .catchingUp else { return false }
            sendSYNACK(slot, log.current(slot), guestSYN: segment.options, sink: sink)
            return true
        }
        guard let position = reopenCandidate(for: key) else { return false }
        let slot = awaitingReopen.remove(at: position)
        let record = log.current(slot)
        var splice = Splice(phase: .catchingUp, serial: slot.serial)
        splice.clientViewWindowScale = record.serverOptions?.windowScale ?? 0
        splice.timestamps = record.serverTimestamps != nil && record.clientTimestamps != nil
        splice.startedAt = now
        splice = catchingUp(splice, record, guestSYN: segment, now: now)
        splice.ports = ReopenedPorts(serving: key.serverPort, logged: record.key.serverPort)
        splices[slot.index] = splice
        reopenedKeys[key] = slot
        active.append(slot.index)
        pendingCount += 1
        report.withLock { $0.pending = pendingCount }
        logger.info(
            "relay-server connection opened again",
            metadata: ["connection": "\(record.key)", "serving port": "\(key.serverPort)"])
        sendSYNACK(slot, record, guestSYN: segment.options, sink: sink)
        pump(slot, sink: sink)
        checkVerified(slot, record, now: now, sink: sink)
        return true
    }

    /// Which waiting connection a new guest's SYN to `key`'s end server opens again: the oldest
    /// to that address and port with an exchange in flight (a request or response bytes past its
    /// replay start: what a re-run client request would send again), else the oldest one between
    /// exchanges (equivalent to a new connection). Never one whose end server has closed: no
    /// relay server sends a request on that.
    private func reopenCandidate(for key: FlowKey) -> Int? {
        var idle: Int?
        for (position, slot) in awaitingReopen.enumerated() where phase(of: slot) == .awaitingReopen {
            let record = log.current(slot)
            guard record.key.clientAddress == key.clientAddress, record.key.clientPort == key.clientPort,
                !record.clientFINLogged
            else { continue }
            if record.clientBytesHeld > 0 || record.replayedServerStream.byteCount > 0 { return position }
            if idle == nil { idle = position }
        }
        return idle
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

    /// The end server's SYN/ACK as the new guest must see it: the end server's ISN at the replay
    /// start and its original options, those the guest's SYN offered too (RFC 7323 §2.2, RFC 2018).
    private func sendSYNACK(_ slot: Slot, _ record: ConnectionRecord, guestSYN: TCPOptions, sink: FrameSink) {
        let splice = splices[slot.index]
        let original = record.clientOptions
        var options = TCPOptions(
            maximumSegmentSize: original.maximumSegmentSize,
            windowScale: guestSYN.windowScale == nil ? nil : original.windowScale,
            sackPermitted: original.sackPermitted && guestSYN.sackPermitted)
        if splice.timestamps, let stamps = guestSYN.timestamps {
            options.timestamps = TCPTimestamps(value: record.clientTimestamps?.value ?? 1, echoReply: stamps.value)
        }
        let spec = asClient(
            record, sequence: record.replayClientISN,
            acknowledging: splice.acknowledgeable(record) &+ splice.translation.sequenceDelta, flags: [.syn, .ack],
            options: options, ports: splice.ports)
        sink.toGuest { frame in (try? FrameBuilder.tcp(spec, into: frame)) ?? 0 }
    }

    /// A segment from the end server of a connection nobody serves now: logged already (the
    /// new guest may open it again), dropped. While it is being closed, its FIN is acknowledged
    /// and that ends the connection.
    func endServerWhileUnclaimed(_ slot: Slot, _ segment: TCPSegmentView, sink: FrameSink) {
        guard splices[slot.index].phase == .closingUnclaimed, segment.flags.contains(.fin) else { return }
        let record = log.current(slot)
        toEndServer(record, sequence: record.serverSendMax &+ 1, flags: .ack, sink: sink)
        finishUnclaimed(slot, record, how: "closed")
    }

    /// Closes the waiting connections whose bound passed (one FIN each, or a RST when the end
    /// server lacks bytes the old guest sent), and resets those whose close went unanswered.
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
            guard now &- splice.startedAt > reopenBoundNanos else { continue }
            let record = log.current(slot)
            if splice.phase == .awaitingReopen, record.serverAckedByClient == record.serverSendMax,
                !record.serverFINSent
            {
                toEndServer(record, sequence: record.serverSendMax, flags: [.fin, .ack], sink: sink)
                if record.clientFINLogged {  // it had closed its side already: both are done
                    awaitingReopen.remove(at: position)
                    finishUnclaimed(slot, record, how: "closed")
                    continue
                }
                splices[slot.index].phase = .closingUnclaimed
                splices[slot.index].startedAt = now
                continue
            }
            toEndServer(record, sequence: record.serverAckedByClient, flags: [.rst, .ack], sink: sink)
            awaitingReopen.remove(at: position)
            finishUnclaimed(slot, record, how: "reset")
        }
    }

    private func finishUnclaimed(_ slot: Slot, _ record: ConnectionRecord, how: String) {
        logger.info(
            "relay-server connection not opened again: \(how) toward its end server",
            metadata: ["connection": "\(record.key)"])
        totals.withLock { $0.unclaimed += 1 }
        splices[slot.index] = Splice()
        log.close(slot)
    }

    /// A segment to the end server, as the old guest's connection (its logged port).
    private func toEndServer(_ record: ConnectionRecord, sequence: UInt32, flags: TCPFlags, sink: FrameSink) {
        let spec = TCPFrameSpec(
            sourceMAC: serviceMAC, destinationMAC: clientMAC, source: service,
            destination: IPv4Address(rawValue: record.key.clientAddress), sourcePort: record.key.serverPort,
            destinationPort: record.key.clientPort, sequenceNumber: SequenceNumber(sequence),
            acknowledgmentNumber: SequenceNumber(record.nextClientSequence), flags: flags, window: 0xFFFF)
        sink.toClients { frame in (try? FrameBuilder.tcp(spec, into: frame)) ?? 0 }
    }
}
