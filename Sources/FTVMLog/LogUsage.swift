/// Statistics kept in the log's header; they survive a daemon restart.
public struct LogCounters: Hashable, Sendable {
    public var connectionsOpened: UInt64
    public var bytesLogged: UInt64
    /// New connections passed without a record because no slot was free (never refused).
    public var admittedUnlogged: UInt64
    /// Connections made unprotected because the log had no room for them or their bytes.
    public var unprotectedLogFull: UInt64
    /// Connections made unprotected because their history outgrew the per-connection budget.
    public var unprotectedOverBudget: UInt64
    /// Completed prefixes dropped from connections' logs, and the client bytes they freed.
    public var trims: UInt64
    public var bytesTrimmed: UInt64
    /// Records freed because their connection stayed idle past the bound.
    public var reclaimed: UInt64
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
    /// Live records that are unprotected now.
    public var unprotectedNow: Int
}
