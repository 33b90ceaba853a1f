/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
///
/// The relay rewrites sequence numbers, acknowledgments, SACK edges and timestamps on every
/// segment of a replayed connection. Recomputing the TCP checksum over the whole segment each time
/// would touch every payload byte; RFC 1624's update touches only the changed words, and — given
/// a checksum that was correct before — yields bit for bit what a full recomputation would
/// (`HC' = ~(~HC + ~m + m')`, eqn. 3, which avoids the −0/+0 ambiguity of eqn. 2). A checksum that
/// was wrong stays wrong by the same amount, so the receiver still drops a corrupted segment.
public enum InternetChecksum {
    /// The checksum of `bytes`: the ones' complement of their ones' complement sum, taken as
    /// big-endian 16-bit words (an odd last byte is padded with a zero). A region that already
    /// contains a correct checksum field checksums to 0.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        ~fold(UInt64(sum(bytes)))
    }

    /// The ones' complement sum of `bytes` as big-endian 16-bit words, folded to 16 bits but not
    /// complemented. Sums of regions that each start at an even offset of the checksummed whole
    /// can be added with `combine`.
    public static func sum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        // Byte-order independence (RFC 1071 §2(B)): sum native 64-bit words with end-around
        // carry, fold, and swap once at the end.
        var accumulator: UInt64 = 0
        var index = 0
        let count = bytes.count
        while count - index >= 8 {
            let (partial, overflow) = accumulator.addingReportingOverflow(
                bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            accumulator = partial &+ (overflow ? 1 : 0)
            index += 8
        }
        var tail: UInt64 = 0
        while count - index >= 2 {
            tail += UInt64(bytes.loadUnaligned(fromByteOffset: index, as: UInt16.self))
            index += 2
        }
        if index < count {
            // The odd byte is the high half of a big-endian word, [b, 0] in memory, which is
            // what a native load of those two bytes would give. (Not written as a load through
            // `withUnsafeBytes(of: &pair)`: Swift 6.3.1 at -O dropped that branch entirely.)
            #if _endian(little)
            tail += UInt64(bytes[index])
            #else
            tail += UInt64(bytes[index]) << 8
            #endif
        }
        let (partial, overflow) = accumulator.addingReportingOverflow(tail)
        accumulator = partial &+ (overflow ? 1 : 0)
        return UInt16(bigEndian: fold(accumulator))
    }

    /// Adds two ones' complement sums.
    public static func combine(_ a: UInt16, _ b: UInt16) -> UInt16 {
        fold(UInt64(a) + UInt64(b))
    }

    /// The checksum an IPv4 header (`header`, IHL × 4 bytes) should carry, computed as if its
    /// checksum field (bytes 10–11) were zero (RFC 791 §3.1). (Fewer than 12 bytes: summed as is.)
    public static func ipv4Header(_ header: UnsafeRawBufferPointer) -> UInt16 {
        guard header.count >= 12 else { return checksum(header) }
        let before = sum(UnsafeRawBufferPointer(rebasing: header[0..<10]))
        let after = sum(UnsafeRawBufferPointer(rebasing: header[12...]))
        return ~combine(before, after)
    }

    /// The sum of the TCP pseudo-header (RFC 9293 §3.1): source, destination, zero, protocol 6,
    /// and the TCP length (header plus payload, not counting Ethernet padding).
    public static func tcpPseudoHeaderSum(
        source: IPv4Address, destination: IPv4Address, tcpLength: Int
    ) -> UInt16 {
        let words =
            UInt64(source.rawValue >> 16) + UInt64(source.rawValue & 0xFFFF)
            + UInt64(destination.rawValue >> 16) + UInt64(destination.rawValue & 0xFFFF)
            + UInt64(IPProtocol.tcp.rawValue) + UInt64(tcpLength & 0xFFFF)
        return fold(words)
    }

    /// The checksum a TCP segment (`segment`: header and payload, nothing after) should carry,
    /// computed over the pseudo-header and the segment as if its checksum field (bytes 16–17)
    /// were zero. (A segment too short to hold that field is summed as it is.)
    public static func tcp(
        source: IPv4Address, destination: IPv4Address, segment: UnsafeRawBufferPointer
    ) -> UInt16 {
        let pseudo = tcpPseudoHeaderSum(source: source, destination: destination, tcpLength: segment.count)
        guard segment.count >= 18 else { return ~combine(pseudo, sum(segment)) }
        let before = sum(UnsafeRawBufferPointer(rebasing: segment[0..<16]))
        let after = sum(UnsafeRawBufferPointer(rebasing: segment[18...]))
        return ~combine(combine(pseudo, before), after)
    }

    /// RFC 1624 eqn. 3: the checksum after one 16-bit word covered by `checksum` changed from
    /// `old` to `new`. The word must sit at an even offset of the checksummed data.
    public static func adjusted(_ checksum: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16 {
        var adjuster = Adjuster(checksum)
        adjuster.replace(old, with: new)
        return adjuster.checksum
    }

    /// RFC 1624 eqn. 3 for a 32-bit field (a sequence number, a timestamp) that sits at an even
    /// offset of the checksummed data.
    public static func adjusted(_ checksum: UInt16, replacing old: UInt32, with new: UInt32) -> UInt16 {
        var adjuster = Adjuster(checksum)
        adjuster.replace(old, with: new, oddOffset: false)
        return adjuster.checksum
    }

    /// Accumulates several field changes and produces one updated checksum.
    ///
    /// A field at an odd offset (a timestamp after a single NOP) straddles two 16-bit words; by
    /// RFC 1071's byte-swap property its contribution is the byte-swapped sum of its own words,
    /// which is what `oddOffset` selects.
    struct Adjuster {
        private var accumulator: UInt64

        init(_ checksum: UInt16) {
            accumulator = UInt64(~checksum)
        }

        mutating func replace(_ old: UInt16, with new: UInt16) {
            accumulator += UInt64(~old) + UInt64(new)
        }

        mutating func replace(_ old: UInt32, with new: UInt32, oddOffset: Bool) {
            var oldHigh = UInt16(truncatingIfNeeded: old >> 16)
            var oldLow = UInt16(truncatingIfNeeded: old)
            var newHigh = UInt16(truncatingIfNeeded: new >> 16)
            var newLow = UInt16(truncatingIfNeeded: new)
            if oddOffset {
                oldHigh = oldHigh.byteSwapped
                oldLow = oldLow.byteSwapped
                newHigh = newHigh.byteSwapped
                newLow = newLow.byteSwapped
            }
            accumulator += UInt64(~oldHigh) + UInt64(~oldLow) + UInt64(newHigh) + UInt64(newLow)
        }

        var checksum: UInt16 { ~InternetChecksum.fold(accumulator) }
    }

    /// Folds a wide ones' complement accumulator to 16 bits with end-around carry.
    @inline(__always)
    static func fold(_ value: UInt64) -> UInt16 {
        var value = (value >> 32) + (value & 0xFFFF_FFFF)
        value = (value >> 32) + (value & 0xFFFF_FFFF)
        value = (value >> 16) + (value & 0xFFFF)
        value = (value >> 16) + (value & 0xFFFF)
        return UInt16(truncatingIfNeeded: value)
    }
}
