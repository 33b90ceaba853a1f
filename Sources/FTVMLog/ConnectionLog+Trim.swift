/// Bounded replay: dropping completed exchanges from a connection's log (relay thread only).
///
/// A replay need not start at the SYN. Once the client has acknowledged a whole response and the
/// request before it is logged, a new connection whose first request is the next one is
/// equivalent from there (for HTTP the relay finds such boundaries by following the framing; other
/// protocols name them through the guest agent). `trim` moves the connection's replay start to
/// such a boundary and frees the chunks wholly before it, so what a connection holds, and what a
/// recovery re-injects, is what is in flight, not the connection's age.
extension ConnectionLog {
    /// Moves the replay start of `slot` forward to `start` and frees the chunks wholly before it.
    ///
    /// The server stream checksum keeps running from the ISN; `start.serverCRC` (the running
    /// checksum at `start.serverOffset`) is what a replay takes off it (`replayedServerStream`).
    ///
    /// - Returns: false, changing nothing, when `start` is not a place the log can replay from:
    ///   behind the current start, past what is logged or checksummed, past what the client has
    ///   acknowledged, or the connection is unprotected.
    @discardableResult
    public func trim(_ slot: Slot, to start: ReplayStart) -> Bool {
        let index = checked(slot)
        let old = images[index]
        guard old.protection == .protected, old.flags.contains(.serverHandshake),
            start.clientOffset >= old.replayClientStart, start.clientOffset <= old.clientBytes,
            start.serverOffset >= old.replayServerStart, start.serverOffset <= old.serverStreamBytes,
            !SequenceMath.isAfter(SequenceMath.advance(old.serverISN, by: 1 + start.serverOffset), old.ackedByClient),
            start.clientOffset > old.replayClientStart || start.serverOffset > old.replayServerStart
        else { return false }
        var image = old
        image.replayClientStart = start.clientOffset
        image.replayServerStart = start.serverOffset
        image.replayServerCRC = start.serverCRC
        image.flags.remove(.replayHead)  // (it was the old start's)
        image.replayHeadCRC = 0
        let freed = old.chainLength(geometry) - image.chainLength(geometry)
        // The chain's new head: skip the freed chunks (an empty chain has no chunks at all).
        var head = old.firstChunk
        for _ in 0..<freed { head = chunkNext(Int(head)) }
        if image.chainLength(geometry) == 0 {
            image.firstChunk = LogLayout.noChunk
            image.lastChunk = LogLayout.noChunk
        } else {
            image.firstChunk = head
        }
        images[index] = image
        publish(index)
        freeChain(of: old, chunks: freed)
        let dropped = start.clientOffset - old.replayClientStart
        drop(LogLayout.bytesHeldOffset, by: dropped)
        bump(LogLayout.trimsOffset)
        bump(LogLayout.bytesTrimmedOffset, by: dropped)
        return true
    }

    /// Says that the relay stopped following the connection's HTTP framing at server stream
    /// offset `offset`: the stream checksum is masked up to there and not after, and a replay's
    /// checksum must do the same. Nothing happens for a connection without HTTP framing or one
    /// already stopped.
    public func stopFraming(_ slot: Slot, atServerOffset offset: UInt64) {
        let index = checked(slot)
        var image = images[index]
        guard image.flags.contains(.httpFraming), !image.flags.contains(.framingStopped) else { return }
        image.flags.insert(.framingStopped)
        image.maskEnd = offset
        images[index] = image
        publish(index)
    }

    /// Frees the record of a connection that went idle for good (its client vanished, or a FIN or
    /// RST never passed the relay); counted in `reclaimed`.
    public func reclaim(_ slot: Slot) {
        if close(slot) { bump(LogLayout.reclaimedOffset) }
    }
}

/// How far a server segment extends the stream checksum: `bytes` more bytes, after which the
/// running CRC32C is `crc`.
public struct StreamAdvance: Hashable, Sendable {
    public var bytes: Int
    public var crc: UInt32

    public init(bytes: Int, crc: UInt32) {
        self.bytes = bytes
        self.crc = crc
    }
}

/// Where a connection's streams stand, in offsets: what trimming decides on, per frame, without
/// building a whole `ConnectionRecord`.
public struct StreamPosition: Hashable, Sendable {
    /// Client bytes logged since the SYN.
    public var clientLogged: UInt64
    /// Server stream bytes the checksum covers.
    public var serverChecked: UInt64
    /// Server stream bytes the client has acknowledged (a FIN counts as one more).
    public var serverAcked: UInt64
    public var replayStart: ReplayStart
    public var isProtected: Bool
}

extension ConnectionLog {
    /// The writer's view of `slot`'s stream offsets (relay thread).
    public func position(_ slot: Slot) -> StreamPosition {
        let image = images[checked(slot)]
        var acked: UInt64 = 0
        if image.flags.contains(.serverHandshake) {
            let beyond = SequenceMath.distance(from: image.serverStreamEnd, to: image.ackedByClient)
            acked =
                beyond >= 0
                ? image.serverStreamBytes + UInt64(beyond)
                : image.serverStreamBytes - min(image.serverStreamBytes, UInt64(-beyond))
        }
        return StreamPosition(
            clientLogged: image.clientBytes, serverChecked: image.serverStreamBytes, serverAcked: acked,
            replayStart: ReplayStart(
                clientOffset: image.replayClientStart, serverOffset: image.replayServerStart,
                serverCRC: image.replayServerCRC),
            isProtected: image.protection == .protected)
    }
}
