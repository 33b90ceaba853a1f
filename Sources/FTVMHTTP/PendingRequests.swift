/// The requests whose exchange is not complete yet, oldest first, in a fixed ring.
///
/// Responses pair with requests in order (RFC 9112 §9.3.2), and a response's framing depends on
/// its request's method (HEAD, CONNECT), so every parsed request head is kept until its exchange
/// completes. Pipelining is rare and shallow in practice; the ring's fixed capacity is what keeps
/// the tracker allocation-free, and a client that exceeds it stops the framing.
struct PendingRequests {
    static let capacity = 64
    private static let mask = UInt64(capacity - 1)

    struct Flags: OptionSet {
        let rawValue: UInt8
        /// A response to HEAD has no body (RFC 9110 §9.3.2).
        static let head = Flags(rawValue: 1)
        /// A 2xx response to CONNECT starts a tunnel (RFC 9110 §9.3.6).
        static let connect = Flags(rawValue: 2)
    }

    private var ends = InlineArray<64, UInt64>(repeating: 0)
    private var flags = InlineArray<64, UInt8>(repeating: 0)

    /// The flags of request `index` (counted from the first request of the connection).
    func flags(of index: UInt64) -> Flags {
        Flags(rawValue: flags[Int(index & Self.mask)])
    }

    /// Where request `index` ended in the request stream (once it is complete).
    func end(of index: UInt64) -> UInt64 {
        ends[Int(index & Self.mask)]
    }

    mutating func setFlags(_ value: Flags, of index: UInt64) {
        flags[Int(index & Self.mask)] = value.rawValue
    }

    mutating func setEnd(_ value: UInt64, of index: UInt64) {
        ends[Int(index & Self.mask)] = value
    }
}
