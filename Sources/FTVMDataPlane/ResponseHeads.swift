/// Per slot, the first bytes of the response a followed HTTP connection is sending: what a
/// replay reads the response's validators from to resume it with a range request instead of
/// regenerating it (`RangeResume`, docs/replay.md). The log keeps no server bytes, only their
/// checksum, so the head is kept here, in the daemon's memory: a restarted daemon has none, and
/// its replays regenerate.
///
/// Relay thread only. A connection's buffer is allocated when its first response passes.
final class ResponseHeads {
    /// At most this many bytes of a response are kept: heads longer than that are not resumed.
    static let capacity = 2048

    private var bytes: [[UInt8]]
    /// The server stream offset of the kept response's first byte (`UInt64.max`: none).
    private var starts: [UInt64]

    init(slots: Int) {
        bytes = Array(repeating: [], count: slots)
        starts = Array(repeating: .max, count: slots)
    }

    /// A response begins at server stream offset `offset`: what was kept is dropped.
    func begin(_ index: Int, at offset: UInt64) {
        starts[index] = offset
        bytes[index].removeAll(keepingCapacity: true)
    }

    /// Keeps what `segment` (server bytes from stream offset `offset`, in order) adds to the
    /// kept response's first `capacity` bytes.
    func keep(_ index: Int, _ segment: UnsafeRawBufferPointer, at offset: UInt64) {
        let start = starts[index]
        guard start != .max, bytes[index].count < Self.capacity else { return }
        let next = start + UInt64(bytes[index].count)
        guard offset <= next, offset + UInt64(segment.count) > next else { return }
        let from = Int(next - offset)
        let count = min(segment.count - from, Self.capacity - bytes[index].count)
        if bytes[index].capacity == 0 { bytes[index].reserveCapacity(Self.capacity) }
        bytes[index].append(contentsOf: UnsafeRawBufferPointer(rebasing: segment[from..<(from + count)]))
    }

    /// The kept first bytes of the response that began at `offset`, if that is the one kept.
    func response(_ index: Int, startingAt offset: UInt64) -> [UInt8]? {
        starts[index] == offset && !bytes[index].isEmpty ? bytes[index] : nil
    }

    /// The slot's connection ended: nothing is kept for it.
    func forget(_ index: Int) {
        starts[index] = .max
        bytes[index] = []
    }
}
