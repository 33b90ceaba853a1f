import FTVMLog

/// The exchange boundaries a connection's log may be trimmed to, from when the relay learns them
/// until the client's acknowledgement makes them due (DESIGN.md, "Bounded replay").
///
/// A boundary needs three numbers: the client and server stream offsets where the exchange
/// ended, and the server stream's running checksum there (so a replay can take the dropped
/// prefix off it, `CRC32C.suffix`). The checksum is only known where the relay split its
/// computation: at the end of each response it framed (HTTP), or of each server segment (other
/// protocols, whose boundaries the guest names through an explicit trim). Those points are kept
/// as *checkpoints*; a boundary whose server offset is not among them cannot be used.
///
/// Relay thread only. Fixed size: the rings overwrite their oldest entry, which loses at most an
/// opportunity to trim (a later boundary subsumes an earlier one), never correctness.
struct TrimCandidates {
    struct Checkpoint {
        var offset: UInt64 = 0
        var crc: UInt32 = 0
    }

    static let checkpointCapacity = 32
    static let candidateCapacity = 8

    private var checkpoints = InlineArray<32, Checkpoint>(repeating: Checkpoint())
    private var checkpointCount = 0
    private var checkpointNext = 0
    /// Boundaries in stream order, not yet acknowledged by the client.
    private var candidates = InlineArray<8, ReplayStart>(
        repeating: ReplayStart(clientOffset: 0, serverOffset: 0, serverCRC: 0))
    private var candidateCount = 0
    /// An explicit trim whose server offset the stream has not reached yet: its checksum is
    /// taken when a server segment crosses it.
    private(set) var pendingExplicit: (client: UInt64, server: UInt64)?

    /// Notes the running checksum `crc` at server stream offset `offset`.
    mutating func checkpoint(_ offset: UInt64, crc: UInt32) {
        checkpoints[checkpointNext] = Checkpoint(offset: offset, crc: crc)
        checkpointNext = (checkpointNext + 1) % Self.checkpointCapacity
        checkpointCount = min(checkpointCount + 1, Self.checkpointCapacity)
    }

    /// The checksum at `offset`, if a checkpoint is there.
    func crc(at offset: UInt64) -> UInt32? {
        for index in 0..<checkpointCount where checkpoints[index].offset == offset { return checkpoints[index].crc }
        return nil
    }

    /// Offers the boundary (client offset, server offset); false when the server offset is not a
    /// checkpoint (its checksum is unknown) or the boundary is not past the last one offered.
    @discardableResult
    mutating func propose(client: UInt64, server: UInt64) -> Bool {
        guard let crc = crc(at: server) else { return false }
        if candidateCount > 0 {
            let last = candidates[candidateCount - 1]
            guard client >= last.clientOffset, server >= last.serverOffset,
                client > last.clientOffset || server > last.serverOffset
            else { return false }
        }
        let boundary = ReplayStart(clientOffset: client, serverOffset: server, serverCRC: crc)
        if candidateCount == Self.candidateCapacity {
            candidates[candidateCount - 1] = boundary  // the newest subsumes the one it replaces
        } else {
            candidates[candidateCount] = boundary
            candidateCount += 1
        }
        return true
    }

    /// An explicit trim at a server offset the stream has not reached: kept (only the latest)
    /// until `crossing` sees the stream pass it.
    mutating func expect(client: UInt64, server: UInt64) {
        pendingExplicit = (client, server)
    }

    /// Where in a stream extension [from, from + count) the checksum must be split for a pending
    /// explicit trim (a position inside it), if one falls there.
    func split(from: UInt64, count: Int) -> Int? {
        guard let pending = pendingExplicit, pending.server > from, pending.server <= from + UInt64(count) else {
            return nil
        }
        return Int(pending.server - from)
    }

    /// The pending explicit trim's checkpoint is now known: offer it.
    mutating func resolvePending(crc: UInt32) {
        guard let pending = pendingExplicit else { return }
        pendingExplicit = nil
        checkpoint(pending.server, crc: crc)
        propose(client: pending.client, server: pending.server)
    }

    /// The furthest boundary the client has acknowledged whose request bytes are all logged,
    /// removed with every boundary before it.
    mutating func due(serverAcked: UInt64, clientLogged: UInt64) -> ReplayStart? {
        var taken = 0
        var found: ReplayStart?
        while taken < candidateCount, candidates[taken].serverOffset <= serverAcked {
            if candidates[taken].clientOffset <= clientLogged { found = candidates[taken] }
            taken += 1
        }
        guard taken > 0 else { return nil }
        for index in 0..<(candidateCount - taken) { candidates[index] = candidates[index + taken] }
        candidateCount -= taken
        return found
    }

    var isEmpty: Bool { candidateCount == 0 && pendingExplicit == nil }
}
