/// A TCP sequence or acknowledgment number: a point on a circle of 2^32 values.
///
/// Ordering is only meaningful between numbers less than 2^31 apart (RFC 9293 §3.4, RFC 1982
/// serial number arithmetic), so the type is deliberately not `Comparable` — sorting with a
/// non-transitive `<` would be wrong. Use `precedes(_:)` and friends, which are the kernel's
/// `before()`/`after()`. Two numbers exactly 2^31 apart are unordered: neither precedes the other.
public struct SequenceNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The number as on the wire.
    public var rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public init(_ value: UInt32) {
        rawValue = value
    }

    /// `self` moved forward by `count` bytes, wrapping at 2^32.
    public static func &+ (lhs: SequenceNumber, rhs: UInt32) -> SequenceNumber {
        SequenceNumber(lhs.rawValue &+ rhs)
    }

    /// `self` moved back by `count` bytes, wrapping at 2^32.
    public static func &- (lhs: SequenceNumber, rhs: UInt32) -> SequenceNumber {
        SequenceNumber(lhs.rawValue &- rhs)
    }

    /// The offset that takes `rhs` to `lhs` mod 2^32 — the replay's
    /// `delta = backupISN &- primaryISN`, applied later with `&+`/`&-`.
    public static func &- (lhs: SequenceNumber, rhs: SequenceNumber) -> UInt32 {
        lhs.rawValue &- rhs.rawValue
    }

    /// The signed distance from `self` to `other`: positive when `other` is ahead.
    public func distance(to other: SequenceNumber) -> Int32 {
        Int32(bitPattern: other.rawValue &- rawValue)
    }

    /// `self < other` in sequence space (RFC 9293's "=<" family; Linux `before()`).
    public func precedes(_ other: SequenceNumber) -> Bool {
        distance(to: other) > 0
    }

    /// `self <= other` in sequence space.
    public func precedesOrEquals(_ other: SequenceNumber) -> Bool {
        self == other || precedes(other)
    }

    /// `self > other` in sequence space (Linux `after()`).
    public func follows(_ other: SequenceNumber) -> Bool {
        other.precedes(self)
    }

    /// `self >= other` in sequence space.
    public func followsOrEquals(_ other: SequenceNumber) -> Bool {
        self == other || follows(other)
    }

    /// Whether `self` lies in the `count` numbers starting at `start` (`start <= self < start+count`),
    /// the receive-window test of RFC 9293 §3.10.7.4. `count` 0 contains nothing.
    public func isWithin(start: SequenceNumber, count: UInt32) -> Bool {
        rawValue &- start.rawValue < count
    }

    public var description: String { String(rawValue) }
}
