/// The single byte range a `Range` field asks for (RFC 9110 §14.1.2), before it meets the
/// representation's length.
///
/// Only what `GET /bytes/N` honours parses: one `bytes` range. A field the server should ignore
/// (RFC 9110 §14.2 lets it ignore any) does not: another unit, several ranges (answering them
/// needs multipart/byteranges), or invalid syntax.
public enum ByteRange: Sendable, Equatable {
    /// `first-last`, or `first-` when `last` is nil: 0-based, inclusive positions.
    case from(UInt64, through: UInt64?)
    /// `-length`: the representation's last `length` bytes.
    case suffix(length: UInt64)

    /// Parses a `Range` field value such as `bytes=100-`, `bytes=0-499` or `bytes=-500`.
    ///
    /// The unit is case-insensitive (RFC 9110 §14.1) and empty list elements are skipped
    /// (§5.6.1), so `bytes=0-1, ` is one range. A position past UInt64.max makes the value
    /// invalid rather than unsatisfiable: ignoring a Range is always allowed.
    public init?(rangeField value: String) {
        guard let equals = value.firstIndex(of: "="), value[..<equals].lowercased() == "bytes" else { return nil }
        let specs = value[value.index(after: equals)...].split(separator: ",").map { $0.trimmingOWS() }
            .filter { !$0.isEmpty }
        guard specs.count == 1, let spec = specs.first, let dash = spec.firstIndex(of: "-") else { return nil }
        let start = spec[..<dash]
        let end = spec[spec.index(after: dash)...]
        if start.isEmpty {
            guard let length = HTTPRequestParser.parseDecimal(end) else { return nil }
            self = .suffix(length: length)
            return
        }
        guard let first = HTTPRequestParser.parseDecimal(start) else { return nil }
        if end.isEmpty {
            self = .from(first, through: nil)
            return
        }
        // A last position before the first is invalid syntax (§14.1.1), not an empty range.
        guard let last = HTTPRequestParser.parseDecimal(end), last >= first else { return nil }
        self = .from(first, through: last)
    }

    /// The positions selected in a representation of `length` bytes, or nil when the range is
    /// unsatisfiable (416): it starts at or past the end, or is an empty suffix (§14.1.1). A last
    /// position or suffix past the end is cut to the end.
    public func resolved(length: UInt64) -> ClosedRange<UInt64>? {
        switch self {
        case .from(let first, let last):
            guard first < length else { return nil }
            return first...min(last ?? .max, length - 1)
        case .suffix(let count):
            guard count > 0, length > 0 else { return nil }
            return (length - min(count, length))...(length - 1)
        }
    }
}
