/// Statistics kept in the log's header; they survive a daemon restart.
public struct LogCounters: Hashable, Sendable {
    public var connectionsOpened: UInt64
    public var bytesLogged: UInt64
    /// New connections refused because no slot was free or chunks fell below the reserve.
    public var fullRejections: UInt64
    /// Client segments not logged (and so not forwarded) for lack of chunk space.
    public var fullDrops: UInt64
    /// Records freed on attach because no copy verified (their connections cannot be replayed).
    public var corruptRecords: UInt64
    /// Records whose committed copy failed on attach, recovered from the copy before it.
    public var rolledBackRecords: UInt64
    public var attaches: UInt64
}

/// How full the log is, for `ftvm status` and metrics.
public struct LogUsage: Hashable, Sendable {
    public var slotsUsed: Int
    public var slotCount: Int
    public var chunksUsed: Int
    public var chunkCount: Int
    public var chunkSize: Int
    /// Client bytes the log holds for live connections.
    public var bytesHeld: UInt64
    public var counters: LogCounters
}
