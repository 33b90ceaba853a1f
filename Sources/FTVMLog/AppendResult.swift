/// What `appendClientPayload` did with a client segment, and therefore whether the relay may
/// forward it to the primary (output commit: only bytes already in the log may reach a protected
/// connection's primary).
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
    /// The connection is unprotected (now, or since an earlier segment): its history outgrew its
    /// budget or the log had no room. Nothing is logged any more; forward it (the log bounds
    /// protection, never service), and a failover resets the connection instead of replaying it.
    case unprotected

    /// True when the segment may go to the primary.
    public var mayForward: Bool {
        switch self {
        case .logged, .partial, .duplicate, .unprotected: true
        case .gap: false
        }
    }
}
