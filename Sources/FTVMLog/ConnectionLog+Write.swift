import Atomics

/// The write path: the relay thread only. Every call that changes a record publishes it before it
/// returns (`publish`), so what the relay does next is covered by a committed copy.
extension ConnectionLog {
    /// The slot logging `key`, if it is open.
    public func lookup(_ key: FlowKey) -> Slot? {
        guard let slot = index.find(key) else { return nil }
        return Slot(index: slot, serial: images[slot].serial)
    }

    /// Logs a client's SYN: a new record with its 4-tuple, ISN and options.
    ///
    /// A SYN for a key already open with the same ISN is a retransmission and gets the same slot.
    /// A different ISN means the client gave the old connection up and reuses the 4-tuple, so the
    /// old record is closed first.
    ///
    /// `httpFraming` says the server stream checksum will mask `Date:` values found by following
    /// HTTP framing (the relay's choice for the port); replay masks its own checksum the same way.
    ///
    /// `guestInitiated`: the guest opened the connection, and `key`'s client is the end server
    /// whose SYN/ACK this is (docs/relay-servers.md).
    ///
    /// - Returns: nil when no slot is free (counted in `admittedUnlogged`): the relay lets the
    ///   connection pass unlogged. With a slot but fewer than `admissionReserve` free chunks the
    ///   connection is admitted **unprotected** (`.logFull`): its frames pass, nothing of it is
    ///   logged, and a failover resets it cleanly.
    public func open(
        key: FlowKey, clientISN: UInt32, options: SYNOptions, httpFraming: Bool = false, guestInitiated: Bool = false
    ) -> Slot? {
        if let existing = index.find(key) {
            if images[existing].clientISN == clientISN { return Slot(index: existing, serial: images[existing].serial) }
            release(existing)
        }
        guard freeSlotCount > 0 else {
            bump(LogLayout.admittedUnloggedOffset)
            return nil
        }
        freeSlotCount -= 1
        let slot = Int(freeSlots[freeSlotCount])
        let serial = word64(LogLayout.connectionsOpenedOffset).load(ordering: .relaxed) &+ 1
        var image = RecordImage.free(sequence: images[slot].sequence)
        image.serial = serial
        image.state = .open
        image.key = key
        image.clientISN = clientISN
        image.clientOptions = options.encoded
        if httpFraming { image.flags.insert(.httpFraming) }
        if guestInitiated { image.flags.insert(.guestInitiated) }
        if freeChunkCount < admissionReserve {
            image.protection = .logFull
            bump(LogLayout.unprotectedFullOffset)
            bump(LogLayout.unprotectedNowOffset)
        }
        images[slot] = image
        publish(slot)
        index.insert(key, slot: slot)
        word64(LogLayout.connectionsOpenedOffset).store(serial, ordering: .relaxed)
        bump(LogLayout.slotsInUseOffset)
        return Slot(index: slot, serial: serial)
    }

    /// Logs the primary's SYN/ACK: its ISN and options. From here the server-side fields count
    /// from `serverISN + 1` (nothing acknowledged yet, nothing sent beyond the SYN).
    public func setServerHandshake(_ slot: Slot, serverISN: UInt32, options: SYNOptions) {
        let index = checked(slot)
        let image = images[index]
        if image.flags.contains(.serverHandshake), image.serverISN == serverISN,
            image.serverOptions == options.encoded
        {
            return  // a retransmitted SYN/ACK
        }
        var updated = image
        updated.flags.insert(.serverHandshake)
        updated.serverISN = serverISN
        updated.serverOptions = options.encoded
        updated.ackedByClient = serverISN
        updated.serverSendMax = serverISN &+ 1
        updated.serverStreamEnd = serverISN &+ 1
        updated.serverStreamCRC = 0
        updated.serverStreamBytes = 0
        images[index] = updated
        publish(index)
    }

    /// Logs the payload of a client segment that starts at sequence number `seq`.
    ///
    /// Only bytes the log does not hold yet are written, so retransmissions and overlapping
    /// segments cost nothing twice. Bytes go into the connection's last chunk and then fresh
    /// chunks, all before the record copy that covers them is published. All or nothing: a segment
    /// is logged whole or not at all.
    ///
    /// A segment whose new bytes would take the connection's history since its replay start past
    /// `connectionBudget`, or that needs more chunks than are free, makes the connection
    /// **unprotected** instead: its chunks are freed at once, and from then on its segments pass
    /// unlogged (`.unprotected`, which may be forwarded). The log bounds protection, never service.
    ///
    /// - Returns: what happened, and through `mayForward`, whether the relay may forward the
    ///   segment to the primary.
    public func appendClientPayload(_ slot: Slot, seq: UInt32, bytes: UnsafeRawBufferPointer) -> AppendResult {
        let index = checked(slot)
        var image = images[index]
        guard image.protection == .protected else { return .unprotected }
        let offset = SequenceMath.distance(from: image.nextPayloadSequence, to: seq)
        guard bytes.count > 0 else { return .duplicate }
        if offset > 0 { return .gap }
        let skip = -offset
        if skip >= bytes.count { return .duplicate }
        if image.flags.contains(.clientFIN) { return .gap }  // bytes after the client's FIN
        let count = bytes.count - skip

        // Room: the tail of the last chunk, then whole chunks.
        let chunkSize = geometry.chunkSize
        let used = Int(image.clientBytes % UInt64(chunkSize))
        // (A partly filled last chunk is never trimmed away, so `used > 0` means there is one.)
        let room = used == 0 ? 0 : chunkSize - used
        let chunksNeeded = count > room ? (count - room + chunkSize - 1) / chunkSize : 0
        if image.bytesHeld + UInt64(count) > connectionBudget {
            unprotect(index, .overBudget)
            return .unprotected
        }
        if chunksNeeded > freeChunkCount {
            unprotect(index, .logFull)
            return .unprotected
        }

        var source = bytes.baseAddress! + skip
        var remaining = count
        if room > 0 {
            let part = min(room, remaining)
            (chunkPayload(Int(image.lastChunk)) + used).copyMemory(from: source, byteCount: part)
            source += part
            remaining -= part
        }
        while remaining > 0 {
            freeChunkCount -= 1
            let chunk = freeChunks[freeChunkCount]
            chunkHeader(Int(chunk), next: LogLayout.noChunk, ownerSlot: UInt32(index), ownerSerial: image.serial)
            let part = min(chunkSize, remaining)
            chunkPayload(Int(chunk)).copyMemory(from: source, byteCount: part)
            source += part
            remaining -= part
            // Linking from the committed last chunk is harmless: a committed copy's byte count
            // stops its chain before this link.
            if image.lastChunk == LogLayout.noChunk {
                image.firstChunk = chunk
            } else {
                setChunkNext(Int(image.lastChunk), chunk)
            }
            image.lastChunk = chunk
        }
        image.clientBytes += UInt64(count)
        images[index] = image
        publish(index)
        bump(LogLayout.bytesLoggedOffset, by: UInt64(count))
        bump(LogLayout.bytesHeldOffset, by: UInt64(count))
        if chunksNeeded > 0 { bump(LogLayout.chunksInUseOffset, by: UInt64(chunksNeeded)) }
        return skip == 0 ? .logged(count) : .partial(count)
    }

    /// Logs the client's FIN at sequence number `seq` (the FIN takes a sequence number, and a
    /// replay must deliver it to the backup). The record becomes `.closing`.
    ///
    /// - Returns: `.logged(0)` when the FIN is new and follows every logged byte, `.duplicate`
    ///   when it was logged before, `.gap` when bytes before it are missing or it contradicts a
    ///   logged FIN (drop the segment in both cases).
    public func appendClientFIN(_ slot: Slot, seq: UInt32) -> AppendResult {
        let index = checked(slot)
        var image = images[index]
        guard image.protection == .protected else {
            markClosing(slot)
            return .unprotected
        }
        let offset = SequenceMath.distance(from: image.nextPayloadSequence, to: seq)
        if image.flags.contains(.clientFIN) { return offset == 0 ? .duplicate : .gap }
        guard offset == 0 else { return .gap }
        image.flags.insert(.clientFIN)
        image.state = .closing
        images[index] = image
        publish(index)
        return .logged(0)
    }

    /// Records that the client acknowledged server bytes up to `ack` (exclusive). Only forward
    /// progress counts, and never beyond what the server sent (such an ACK is ignored).
    public func noteClientAck(_ slot: Slot, ack: UInt32) {
        let index = checked(slot)
        var image = images[index]
        guard image.flags.contains(.serverHandshake), SequenceMath.isAfter(ack, image.ackedByClient),
            !SequenceMath.isAfter(ack, image.serverSendMax)
        else { return }
        image.ackedByClient = ack
        images[index] = image
        publish(index)
    }

    /// How a server segment's payload, starting at sequence `start` with `count` bytes, continues
    /// the stream the checksum covers: how many of its leading bytes are covered already (a
    /// retransmission's overlap; `count` or more means nothing new), or nil when it starts after
    /// a hole the relay did not see (`startsPastServerStream`: such a segment is dropped, and the
    /// guest retransmits from the hole).
    public func serverStreamSkip(_ slot: Slot, start: UInt32, count: Int) -> Int? {
        let image = images[checked(slot)]
        guard image.flags.contains(.serverHandshake), image.protection == .protected else { return nil }
        let covered = SequenceMath.distance(from: start, to: image.serverStreamEnd)
        return covered >= 0 ? covered : nil
    }

    /// Whether a server segment (or a FIN) starting at sequence `start` comes after a hole in
    /// the stream the checksum covers: server bytes the relay never saw. Such a segment must not
    /// reach the client, whose bytes the checksum has to cover whole (a replay checks and
    /// resumes from its end). False for a record whose stream is not checksummed.
    public func startsPastServerStream(_ slot: Slot, at start: UInt32) -> Bool {
        let image = images[checked(slot)]
        guard image.flags.contains(.serverHandshake), image.protection == .protected else { return false }
        return SequenceMath.distance(from: start, to: image.serverStreamEnd) < 0
    }

    /// The running server stream checksum (what `StreamAdvance.crc` continues from).
    public func serverStreamCRC(_ slot: Slot) -> UInt32 { images[checked(slot)].serverStreamCRC }

    /// Records a server segment forwarded to the client: it ends at `endSeq` (exclusive; counting
    /// the FIN when `fin` is set). Raises snd_max; with `stream`, extends the server stream
    /// checksum by the bytes that continue it (the caller took them past `serverStreamSkip` and
    /// masked them as the record's masking says). Call it before forwarding, so snd_max is never
    /// behind the client's view.
    public func noteServerSent(_ slot: Slot, endSeq: UInt32, fin: Bool = false, stream: StreamAdvance? = nil) {
        let index = checked(slot)
        var image = images[index]
        guard image.flags.contains(.serverHandshake) else { return }
        var changed = false
        if SequenceMath.isAfter(endSeq, image.serverSendMax) {
            image.serverSendMax = endSeq
            changed = true
        }
        if let stream, stream.bytes > 0, image.protection == .protected {
            image.serverStreamCRC = stream.crc
            image.serverStreamBytes += UInt64(stream.bytes)
            image.serverStreamEnd = image.serverStreamEnd &+ UInt32(truncatingIfNeeded: stream.bytes)
            changed = true
        }
        if fin, !image.flags.contains(.serverFIN) {
            image.flags.insert(.serverFIN)
            image.state = .closing
            changed = true
        }
        guard changed else { return }
        images[index] = image
        publish(index)
    }

    /// `noteServerSent` for a payload checksummed as it is (no masking): finds the part that
    /// continues the stream and checksums it.
    public func noteServerSent(_ slot: Slot, endSeq: UInt32, payload: UnsafeRawBufferPointer?, fin: Bool = false) {
        var advance: StreamAdvance?
        if let payload, payload.count > 0 {
            let start = endSeq &- UInt32(truncatingIfNeeded: payload.count) &- (fin ? 1 : 0)
            if let skip = serverStreamSkip(slot, start: start, count: payload.count), skip < payload.count {
                let tail = UnsafeRawBufferPointer(rebasing: payload[skip...])
                advance = StreamAdvance(
                    bytes: tail.count, crc: CRC32C.checksum(tail, continuing: serverStreamCRC(slot)))
            }
        }
        noteServerSent(slot, endSeq: endSeq, fin: fin, stream: advance)
    }

    /// Records the RFC 7323 timestamps of a segment, from the client or from the server. Only a
    /// newer TSval (mod 2^32) replaces the stored pair, so a reordered segment cannot move it back.
    public func noteTimestamps(_ slot: Slot, fromClient: Bool, tsval: UInt32, tsecr: UInt32) {
        let index = checked(slot)
        var image = images[index]
        let flag: RecordImage.Flags = fromClient ? .clientTimestamps : .serverTimestamps
        let (value, echo) = fromClient ? (image.clientTSval, image.clientTSecr) : (image.serverTSval, image.serverTSecr)
        if image.flags.contains(flag) {
            guard SequenceMath.distance(from: value, to: tsval) >= 0, tsval != value || tsecr != echo else { return }
        }
        image.flags.insert(flag)
        if fromClient {
            image.clientTSval = tsval
            image.clientTSecr = tsecr
        } else {
            image.serverTSval = tsval
            image.serverTSecr = tsecr
        }
        images[index] = image
        publish(index)
    }

    /// Marks the connection `.closing` (e.g. a RST was seen); it is still replayed until `close`.
    public func markClosing(_ slot: Slot) {
        let index = checked(slot)
        guard images[index].state == .open else { return }
        images[index].state = .closing
        publish(index)
    }

    /// Ends a connection: publishes its slot as free, then returns its chunks and the slot to the
    /// free lists. Closing a slot that is no longer this connection's does nothing.
    /// - Returns: whether it was this connection's (and is now closed).
    @discardableResult
    public func close(_ slot: Slot) -> Bool {
        guard (0..<geometry.slots).contains(slot.index), images[slot.index].isLive,
            images[slot.index].serial == slot.serial
        else { return false }
        release(slot.index)
        return true
    }

    // MARK: Internals

    /// Frees a live slot. The free copy is published before any chunk can be handed out again,
    /// so no committed record ever points at a chunk another connection owns.
    func release(_ index: Int) {
        let old = images[index]
        images[index] = .free(sequence: old.sequence)
        publish(index)
        self.index.remove(old.key)
        freeChain(of: old, chunks: old.chainLength(geometry))
        freeSlots[freeSlotCount] = UInt32(index)
        freeSlotCount += 1
        drop(LogLayout.slotsInUseOffset, by: 1)
        drop(LogLayout.bytesHeldOffset, by: old.bytesHeld)
        if old.protection != .protected { drop(LogLayout.unprotectedNowOffset, by: 1) }
    }

    /// Returns the first `chunks` chunks of `image`'s chain to the free list. The caller has
    /// already published a record that no longer points at them.
    func freeChain(of image: RecordImage, chunks: UInt64) {
        var chunk = image.firstChunk
        for step in 0..<chunks {
            pushFreeChunk(Int(chunk))
            if step < chunks - 1 { chunk = chunkNext(Int(chunk)) }
        }
        drop(LogLayout.chunksInUseOffset, by: chunks)
    }

    /// Lets a connection's history go: its chunks are freed and it is logged no more, so a
    /// failover resets it instead of replaying it (invariant 8).
    func unprotect(_ index: Int, _ reason: Protection) {
        let old = images[index]
        var image = old
        image.protection = reason
        image.firstChunk = LogLayout.noChunk
        image.lastChunk = LogLayout.noChunk
        images[index] = image
        publish(index)
        freeChain(of: old, chunks: old.chainLength(geometry))
        drop(LogLayout.bytesHeldOffset, by: old.bytesHeld)
        bump(reason == .overBudget ? LogLayout.unprotectedBudgetOffset : LogLayout.unprotectedFullOffset)
        bump(LogLayout.unprotectedNowOffset)
    }

    /// Seals `images[index]` with the next sequence into the copy the marker does not point at,
    /// then release-stores the marker.
    ///
    /// The fence orders the chunk bytes an append wrote before the copy that covers them: whatever
    /// instruction the writer dies at, a copy that verifies covers only bytes already in place.
    func publish(_ index: Int) {
        let sequence = images[index].sequence &+ 1
        images[index].sequence = sequence
        atomicMemoryFence(ordering: .releasing)
        images[index].encode(into: copyPointer(index, copy: Int(sequence & 1)))
        marker(index).store(sequence, ordering: .releasing)
    }

    /// The slot index of a `Slot` that still names a live connection. A stale `Slot` is a bug in
    /// the caller (it kept one past `close`); writing through it would corrupt another connection.
    func checked(_ slot: Slot) -> Int {
        precondition(
            (0..<geometry.slots).contains(slot.index) && images[slot.index].isLive
                && images[slot.index].serial == slot.serial,
            "ConnectionLog: \(slot) is not open")
        return slot.index
    }
}

/// The replay side of the write path (relay thread only): what a replay reads while it moves
/// connections to another guest, without allocating.
extension ConnectionLog {
    /// The writer's current view of a live connection (its latest published state).
    public func current(_ slot: Slot) -> ConnectionRecord {
        images[checked(slot)].record(slot: slot.index)
    }

    /// Calls `body` with every live connection, in slot order.
    public func forEachLive(_ body: (Slot) -> Void) {
        for index in 0..<geometry.slots where images[index].isLive {
            body(Slot(index: index, serial: images[index].serial))
        }
    }

    /// Records the CRC32C of the first 1024 bytes the guest sent on a relay server's connection
    /// from its current replay start (docs/relay-servers.md).
    public func setReplayHead(_ slot: Slot, crc: UInt32) {
        let index = checked(slot)
        var image = images[index]
        image.flags.insert(.replayHead)
        image.replayHeadCRC = crc
        guard image != images[index] else { return }
        images[index] = image
        publish(index)
    }

    /// Records that a replay moved the connection's server side to another guest (nil: the
    /// guest that answered the SYN serves it).
    public func setTranslation(_ slot: Slot, _ translation: Translation?) {
        let index = checked(slot)
        var image = images[index]
        if let translation {
            image.flags.insert(.translated)
            image.sequenceDelta = translation.sequenceDelta
            image.timestampDelta = translation.timestampDelta
            image.servingWindowScale = UInt32(translation.servingWindowScale)
            image.servingClientBase = translation.servingClientBase
            image.servingServerBase = translation.servingServerBase
            image.servingPort = translation.servingPort
            image.clientWindowScaleSeen = translation.clientWindowScaleSeen.map { UInt16($0) + 1 } ?? 0
            image.clientSequenceShift = translation.clientSequenceShift
            image.clientTimestampShift = translation.clientTimestampShift
        } else {
            image.flags.remove(.translated)
            image.sequenceDelta = 0
            image.timestampDelta = 0
            image.servingWindowScale = 0
            image.servingClientBase = 0
            image.servingServerBase = 0
            image.servingPort = 0
            image.clientWindowScaleSeen = 0
            image.clientSequenceShift = 0
            image.clientTimestampShift = 0
        }
        guard image != images[index] else { return }
        images[index] = image
        publish(index)
    }

    /// Copies logged client bytes from `offset` (0 = the byte after the client's ISN; at least the
    /// replay start) into `destination`, as many as fit and exist; returns how many. `cursor`
    /// caches where the previous read ended, so reading a connection front to back walks its
    /// chunk chain once.
    public func readClientBytes(
        _ slot: Slot, from offset: UInt64, into destination: UnsafeMutableRawBufferPointer,
        cursor: inout ClientByteCursor
    ) -> Int {
        let image = images[checked(slot)]
        guard image.protection == .protected, offset >= image.replayClientStart, offset < image.clientBytes,
            destination.count > 0
        else { return 0 }
        let chunkSize = UInt64(geometry.chunkSize)
        let wantedChunk = geometry.chunkOrdinal(offset)
        let headOrdinal = geometry.chunkOrdinal(image.replayClientStart)
        if cursor.slot != slot || cursor.chunkOrdinal > wantedChunk || cursor.chunkOrdinal < headOrdinal
            || cursor.chunk == LogLayout.noChunk
        {
            cursor = ClientByteCursor(slot: slot, chunk: image.firstChunk, chunkOrdinal: headOrdinal)
        }
        while cursor.chunkOrdinal < wantedChunk {
            cursor.chunk = chunkNext(Int(cursor.chunk))
            cursor.chunkOrdinal += 1
        }
        var copied = 0
        var position = offset
        while copied < destination.count, position < image.clientBytes {
            let within = position % chunkSize
            let part = Int(min(chunkSize - within, image.clientBytes - position, UInt64(destination.count - copied)))
            (destination.baseAddress! + copied).copyMemory(
                from: chunkPayload(Int(cursor.chunk)) + Int(within), byteCount: part)
            copied += part
            position += UInt64(part)
            if position % chunkSize == 0, position < image.clientBytes {
                cursor.chunk = chunkNext(Int(cursor.chunk))
                cursor.chunkOrdinal += 1
            }
        }
        return copied
    }
}

/// Where `readClientBytes` left off in a connection's chunk chain.
public struct ClientByteCursor: Sendable {
    var slot: Slot
    var chunk: UInt32
    var chunkOrdinal: UInt64

    init(slot: Slot, chunk: UInt32, chunkOrdinal: UInt64) {
        self.slot = slot
        self.chunk = chunk
        self.chunkOrdinal = chunkOrdinal
    }

    /// A cursor that has read nothing yet.
    public init() {
        self.init(slot: Slot(index: -1, serial: 0), chunk: LogLayout.noChunk, chunkOrdinal: 0)
    }
}
