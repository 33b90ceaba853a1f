/// Where a connection's next replay start is, beside its record (slot bytes 8-59, LogLayout), for
/// a restarted daemon whose memory of the framing is gone:
/// - a relay server's connection (docs/relay-servers.md): its latest two exchange boundaries, so
///   a new guest's request is still matched to the exchange it re-sends when the record holds
///   finished exchanges before it (a pooled back-end connection whose trims wait for a client
///   exchange still in flight; the re-sent request is the last one, whose exchange may have
///   completed too); while a request is in flight on it, the latest boundary and that request
///   (`noteRequest`), so a restarted daemon follows its framing again from that exchange on;
/// - a client's connection with HTTP framing: the response in progress (the end of its request,
///   its body's start and end), so the framing is taken up again at that response's end
///   (docs/bounded-replay.md).
/// Outside the record's two-copy commit: a hint carries the connection's serial and its own
/// CRC32C, a torn or stale one reads as none, and what it says stays true of that connection
/// once said. Its users still check it against the record.
extension ConnectionLog {
    /// Notes `start`, a boundary of `slot`'s guest stream whose exchange completed.
    public func noteBoundary(_ slot: Slot, _ start: ReplayStart) {
        let kept = boundaryHints(slot)
        guard kept.last != start else { return }
        writeHint(slot, kept.last ?? start, start)
    }

    /// The boundaries `noteBoundary` kept for this connection, oldest first (none, one or two).
    /// (Two places with one client offset are one boundary, or one and a request, `noteRequest`.)
    public func boundaryHints(_ slot: Slot) -> [ReplayStart] {
        guard let (previous, latest) = readHint(slot) else { return [] }
        return previous.clientOffset == latest.clientOffset ? [previous] : [previous, latest]
    }

    /// Notes the request in flight on a relay server's connection: its exchange starts at
    /// `boundary` (the latest one noted, or the replay start), and the request, a HEAD one when
    /// `isHead`, ends at server offset `requestEnd`. It takes the earlier boundary's place until
    /// the exchange completes.
    public func noteRequest(_ slot: Slot, after boundary: ReplayStart, requestEnd: UInt64, isHead: Bool) {
        writeHint(
            slot, boundary,
            ReplayStart(clientOffset: boundary.clientOffset, serverOffset: requestEnd, serverCRC: isHead ? 1 : 0))
    }

    /// The request `noteRequest` kept for this connection: (its exchange's boundary, its end, HEAD).
    public func requestHint(_ slot: Slot) -> (boundary: ReplayStart, requestEnd: UInt64, isHead: Bool)? {
        guard let (boundary, request) = readHint(slot), boundary.clientOffset == request.clientOffset,
            request.serverOffset > boundary.serverOffset
        else { return nil }
        return (boundary, request.serverOffset, request.serverCRC == 1)
    }

    /// Notes the response in progress on a client's connection: the request it answers ends at
    /// client offset `requestEnd`, its body runs from server offset `bodyStart` to `end`.
    public func noteResponse(_ slot: Slot, requestEnd: UInt64, bodyStart: UInt64, end: UInt64) {
        writeHint(
            slot, ReplayStart(clientOffset: requestEnd, serverOffset: bodyStart, serverCRC: 0),
            ReplayStart(clientOffset: requestEnd, serverOffset: end, serverCRC: 0))
    }

    /// The response `noteResponse` kept for this connection: (request end, body start, end).
    public func responseHint(_ slot: Slot) -> (requestEnd: UInt64, bodyStart: UInt64, end: UInt64)? {
        guard let (body, end) = readHint(slot), body.clientOffset == end.clientOffset else { return nil }
        return (end.clientOffset, body.serverOffset, end.serverOffset)
    }

    private func writeHint(_ slot: Slot, _ first: ReplayStart, _ second: ReplayStart) {
        let pointer = region.base + geometry.slotOffset(checked(slot))
        func put<T: FixedWidthInteger>(_ value: T, _ field: Int) {
            pointer.storeBytes(of: value.littleEndian, toByteOffset: field, as: T.self)
        }
        put(slot.serial, LogLayout.hintSerialField)
        for (field, start) in [(LogLayout.hintPreviousField, first), (LogLayout.hintLatestField, second)] {
            put(start.serverOffset, field)
            put(start.clientOffset, field + 8)
            put(start.serverCRC, field + 16)
        }
        put(hintChecksum(pointer), LogLayout.hintChecksumField)
    }

    private func readHint(_ slot: Slot) -> (ReplayStart, ReplayStart)? {
        let pointer = UnsafeRawPointer(region.base + geometry.slotOffset(checked(slot)))
        func get<T: FixedWidthInteger>(_ field: Int, _: T.Type) -> T {
            T(littleEndian: pointer.loadUnaligned(fromByteOffset: field, as: T.self))
        }
        guard hintChecksum(pointer) == get(LogLayout.hintChecksumField, UInt32.self),
            get(LogLayout.hintSerialField, UInt64.self) == slot.serial
        else { return nil }
        let found = [LogLayout.hintPreviousField, LogLayout.hintLatestField].map { field in
            ReplayStart(
                clientOffset: get(field + 8, UInt64.self), serverOffset: get(field, UInt64.self),
                serverCRC: get(field + 16, UInt32.self))
        }
        return (found[0], found[1])
    }

    private func hintChecksum(_ pointer: UnsafeRawPointer) -> UInt32 {
        CRC32C.checksum(
            UnsafeRawBufferPointer(start: pointer + LogLayout.hintSerialField, count: LogLayout.hintChecksummedLength))
    }
}
