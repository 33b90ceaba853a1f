/// TCP sequence arithmetic mod 2^32 (RFC 9293 §3.4; RFC 1982 serial-number comparison).
///
/// Two sequence numbers compare by their signed 32-bit distance, so comparisons stay right across
/// the wrap as long as the values are within 2^31 of each other, which TCP's window guarantees.
public enum SequenceMath {
    /// `a − b` as a signed distance: positive when `a` is after `b`.
    @inline(__always)
    public static func distance(from b: UInt32, to a: UInt32) -> Int { Int(Int32(bitPattern: a &- b)) }

    /// `a` is strictly after `b`.
    @inline(__always)
    public static func isAfter(_ a: UInt32, _ b: UInt32) -> Bool { distance(from: b, to: a) > 0 }

    /// `a` is `b` or after it.
    @inline(__always)
    public static func isAtOrAfter(_ a: UInt32, _ b: UInt32) -> Bool { distance(from: b, to: a) >= 0 }

    /// `b` advanced by `count` bytes.
    @inline(__always)
    public static func advance(_ b: UInt32, by count: UInt64) -> UInt32 { b &+ UInt32(truncatingIfNeeded: count) }
}
