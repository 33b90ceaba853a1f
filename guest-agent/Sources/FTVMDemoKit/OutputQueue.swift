/// A session's response bytes not yet sent: fixed bytes and generated streams, in order.
///
/// Read by `peek` (copy without consuming) and `advance` (commit what the socket took), so the
/// caller needs one shared chunk buffer and generated bodies are never materialised.
struct OutputQueue {
    enum Segment {
        case bytes([UInt8], sent: Int)
        case splitMix(SplitMix64Stream)
        case chunked(ChunkedSplitMix64Stream)
    }

    private var segments: [Segment] = []

    var isEmpty: Bool { segments.isEmpty }

    mutating func append(_ bytes: [UInt8]) {
        if !bytes.isEmpty { segments.append(.bytes(bytes, sent: 0)) }
    }

    mutating func append(_ stream: SplitMix64Stream) {
        if stream.remaining > 0 { segments.append(.splitMix(stream)) }
    }

    mutating func append(_ stream: ChunkedSplitMix64Stream) {
        if !stream.isFinished { segments.append(.chunked(stream)) }
    }

    /// Copies pending output into `buffer` without consuming it; returns how many bytes.
    func peek(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var filled = 0
        for segment in segments where filled < buffer.count {
            let space = UnsafeMutableRawBufferPointer(rebasing: buffer[filled...])
            switch segment {
            case .bytes(let bytes, let sent):
                let count = min(bytes.count - sent, space.count)
                bytes.withUnsafeBytes {
                    space.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[sent..<sent + count]))
                }
                filled += count
            case .splitMix(let stream):
                filled += stream.peek(into: space)
            case .chunked(let stream):
                filled += stream.peek(into: space)
            }
        }
        return filled
    }

    /// Commits `count` bytes (what the socket took); returns how many were committed, which is
    /// less than `count` only when the queue ran out.
    @discardableResult
    mutating func advance(by count: Int) -> Int {
        var left = count
        while left > 0, let segment = segments.first {
            switch segment {
            case .bytes(let bytes, let sent):
                let step = min(bytes.count - sent, left)
                left -= step
                if sent + step == bytes.count {
                    segments.removeFirst()
                } else {
                    segments[0] = .bytes(bytes, sent: sent + step)
                }
            case .splitMix(var stream):
                let step = Int(min(UInt64(left), stream.remaining))
                stream.advance(by: step)
                left -= step
                if stream.remaining == 0 {
                    segments.removeFirst()
                } else {
                    segments[0] = .splitMix(stream)
                }
            case .chunked(var stream):
                left -= stream.advance(by: left)
                if stream.isFinished {
                    segments.removeFirst()
                } else {
                    segments[0] = .chunked(stream)
                }
            }
        }
        return count - left
    }
}
