/// What `appendClientPayload` did with a client segment, and therefore whether the relay may
/// forward it to the primary (output commit: only bytes already in the log may reach it).
public enum AppendResult: Hashable, Sendable {
    /// Every byte was new and is now logged. Forward.
    case logged(Int)
    /// The segment overlapped bytes already logged; only its new tail (this many bytes) was
    /// logged. Forward (the primary's TCP trims the overlap).
    case partial(Int)
    /// Every byte was logged before (a retransmission, a keep-alive, or no payload). Forward.
    case duplicate
    /// The segment starts beyond the next expected byte (an earlier segment is missing), or
    /// carries bytes after a logged FIN. Nothing logged. Drop it: the client will retransmit.
    case gap
    /// Not enough free chunks for the new bytes. Nothing logged, counted in `fullDrops`. Drop
    /// it: the client retransmits, and the bytes are logged once a close frees space.
    case full

    /// True when the segment may go to the primary.
    public var mayForward: Bool {
        switch self {
        case .logged, .partial, .duplicate: true
        case .gap, .full: false
        }
    }
}
