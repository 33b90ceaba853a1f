import FTVMLog

/// Relay servers (docs/relay-servers.md, "Replay", step 2): the CRC32C of the first `length`
/// bytes of the guest's stream from each place a replay may start it (the connection's start and
/// each exchange boundary: a request's first byte). With it, a regenerated request longer than
/// the new guest's first segment (a large POST) still tells from that segment which logged
/// connection it re-sends; without it only a request that fits one segment can. Per slot, in the
/// relay's memory; the head at the replay start is kept in the record too
/// (`ConnectionLog.setReplayHead`), so a restarted daemon still has the one a replay begins with.
struct RequestHeads {
    static let length = 1024
    private static let capacity = 6

    private struct Head {
        var start: UInt64 = 0
        var crc: UInt32 = 0
        var count = 0
    }

    private(set) var serial: UInt64 = 0
    private var heads = InlineArray<6, Head>(repeating: Head())
    private var used = 0

    init() {}

    /// A connection's heads, from its first request (at offset 0) on.
    init(serial: UInt64) {
        self.serial = serial
        used = 1
    }

    /// A request may start at `offset` (an exchange boundary). When full, the newest is
    /// replaced (as the boundaries are: the replay start it stands for may go without a head).
    mutating func begin(at offset: UInt64) {
        for index in 0..<used where heads[index].start == offset { return }
        if used == Self.capacity { used -= 1 }
        heads[used] = Head(start: offset)
        used += 1
    }

    /// The guest's stream bytes from `offset` on, in order; `completed` hears of each head they
    /// complete (its start and CRC32C).
    mutating func feed(
        _ bytes: UnsafeRawBufferPointer, at offset: UInt64, completed: (_ start: UInt64, _ crc: UInt32) -> Void
    ) {
        let end = offset + UInt64(bytes.count)
        for index in 0..<used {
            var head = heads[index]
            let from = head.start + UInt64(head.count)
            guard head.count < Self.length, from >= offset, from < end else { continue }
            let take = min(Self.length - head.count, Int(end - from))
            let first = Int(from - offset)
            head.crc = CRC32C.checksum(
                UnsafeRawBufferPointer(rebasing: bytes[first..<(first + take)]), continuing: head.crc)
            head.count += take
            heads[index] = head
            if head.count == Self.length { completed(head.start, head.crc) }
        }
    }

    /// The connection was trimmed to `offset`: heads before it cannot be replayed from again.
    mutating func forget(before offset: UInt64) {
        var kept = 0
        for index in 0..<used where heads[index].start >= offset {
            heads[kept] = heads[index]
            kept += 1
        }
        used = kept
    }

    /// The CRC32C of the `length` bytes from `start`, once they have all passed.
    func crc(from start: UInt64) -> UInt32? {
        for index in 0..<used where heads[index].start == start {
            return heads[index].count == Self.length ? heads[index].crc : nil
        }
        return nil
    }
}
