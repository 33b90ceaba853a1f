/// The splitmix64 generator (Steele, Lea & Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014), as used by `GET /bytes/N?seed=S` and, seeded from the kernel per
/// request, by `GET /random/N`.
///
/// The primary and the backup VM must regenerate identical bytes for a replayed `/bytes`
/// request, so the constants and the output order are part of the wire contract, not an
/// implementation detail.
public struct SplitMix64: Sendable {
    /// The Weyl-sequence increment ("golden gamma").
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    public var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= Self.gamma
        return Self.mix(state)
    }

    /// The `index`-th output (0-based) of the generator seeded with `seed`.
    ///
    /// The state is a plain counter, so any position is reachable in O(1); this is what lets a
    /// response resume at any byte offset without keeping generator history.
    public static func output(seed: UInt64, index: UInt64) -> UInt64 {
        mix(seed &+ (index &+ 1) &* gamma)
    }

    static func mix(_ state: UInt64) -> UInt64 {
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A byte-addressable view of the splitmix64 output: each output is 8 little-endian bytes, the
/// stream is truncated to `length`.
///
/// Reading is split into `peek` (fill without moving) and `advance` (commit what the socket
/// took), so a connection never holds more than one caller-owned chunk buffer, however large
/// `length` is and however little a send accepts.
public struct SplitMix64Stream: Sendable, Equatable {
    public let seed: UInt64
    public let length: UInt64
    /// Bytes of the stream already delivered.
    public private(set) var offset: UInt64

    public init(seed: UInt64, length: UInt64, offset: UInt64 = 0) {
        self.seed = seed
        self.length = length
        self.offset = min(offset, length)
    }

    public var remaining: UInt64 { length - offset }

    /// Fills the front of `buffer` with the next bytes without consuming them; returns how many.
    public func peek(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = Int(min(UInt64(buffer.count), remaining))
        Self.fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]), seed: seed, from: offset)
        return count
    }

    /// Marks `count` bytes as delivered; `count` is clamped to what remains.
    public mutating func advance(by count: Int) {
        offset += min(UInt64(max(count, 0)), remaining)
    }

    /// `peek` followed by `advance`.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = peek(into: buffer)
        advance(by: count)
        return count
    }

    /// Writes the untruncated stream's bytes `[position, position + buffer.count)` into `buffer`.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer, seed: UInt64, from position: UInt64) {
        var index = position / 8
        var skip = Int(position % 8)
        var written = 0
        while written < buffer.count {
            let word = SplitMix64.output(seed: seed, index: index)
            index &+= 1
            if skip == 0 && buffer.count - written >= 8 {
                // storeBytes(toByteOffset:) tolerates unaligned offsets (SE-0349).
                buffer.storeBytes(of: word.littleEndian, toByteOffset: written, as: UInt64.self)
                written += 8
                continue
            }
            // A word cut by the start position or by the end of the buffer.
            var byteIndex = skip
            while byteIndex < 8 && written < buffer.count {
                buffer[written] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(byteIndex)))
                byteIndex += 1
                written += 1
            }
            skip = 0
        }
    }
}
