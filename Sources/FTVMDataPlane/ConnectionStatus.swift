import FTVMLog

/// One logged connection as `ftvm connections` shows it. Offsets count bytes from the start of
/// each direction's stream (ISN + 1), which is what a replay needs and a client can check.
public struct ConnectionStatus: Codable, Sendable, Equatable {
    public var client: String
    public var server: String
    /// The guest opened the connection, to an end server (a relay server's, docs/relay-servers.md):
    /// the record's roles are mirrored, so `client` is the end server and `server` the guest.
    public var guestInitiated: Bool
    /// Such a connection opened again by a new guest after a replay: the local port that guest
    /// uses (the end server still sees `server`'s).
    public var servingPort: UInt16?
    public var state: String
    public var clientISN: UInt32
    public var serverISN: UInt32?
    /// Client → server bytes logged since the SYN.
    public var clientBytesLogged: UInt64
    /// Of those, the ones the log still holds (from the replay start: what a replay injects).
    public var clientBytesHeld: UInt64
    /// CRC32C of the held bytes, so a test can check the log holds exactly what the client sent.
    public var clientBytesCRC32C: UInt32
    /// Whether a failover can carry the connection: "protected", or why not.
    public var protection: String
    public var isProtected: Bool
    /// Where a replay would open the connection (stream offsets of the latest exchange boundary
    /// the client acknowledged; 0 and 0 until a trim).
    public var replayStartClientOffset: UInt64
    public var replayStartServerOffset: UInt64
    /// How the server stream is compared at a replay: "http" (Date values masked by framing),
    /// "http until N" (the framing stopped being followed at offset N), or "bytes".
    public var framing: String
    public var clientFIN: Bool
    /// Server → client stream offsets: what the client acknowledged, and what the guest sent.
    public var serverBytesAcked: UInt32?
    public var serverBytesSent: UInt32?
    public var serverFIN: Bool
    /// Set once a replay moved the connection to a guest other than the one that answered its
    /// SYN: that guest's ISN minus the client-view ISN (what every server sequence number is
    /// shifted by on its way to the client).
    public var replayedSequenceDelta: UInt32?

    package init(_ record: ConnectionRecord, clientBytes: [UInt8]) {
        let description = record.key.description
        let sides = description.split(separator: "→")
        client = String(sides.first ?? "")
        server = String(sides.last ?? "")
        guestInitiated = record.guestInitiated
        servingPort = record.translation.flatMap { $0.servingPort == 0 ? nil : $0.servingPort }
        state = record.state.description
        clientISN = record.clientISN
        serverISN = record.serverISN
        clientBytesLogged = record.clientBytesLogged
        clientBytesHeld = record.clientBytesHeld
        clientBytesCRC32C = CRC32C.checksum(clientBytes)
        protection = record.protection.description
        isProtected = record.protection == .protected
        replayStartClientOffset = record.replayStart.clientOffset
        replayStartServerOffset = record.replayStart.serverOffset
        framing =
            switch record.masking {
            case .none: "bytes"
            case .http(until: nil): "http"
            case .http(until: let end?): "http until \(end)"
            }
        clientFIN = record.clientFINLogged
        if let isn = record.serverISN {
            // Stream offsets; a FIN takes one sequence number past the last byte.
            let fin: UInt32 = record.serverFINSent ? 1 : 0
            serverBytesAcked = min(record.serverAckedByClient &- isn &- 1, record.serverSendMax &- isn &- 1 &- fin)
            serverBytesSent = record.serverSendMax &- isn &- 1 &- fin
        }
        serverFIN = record.serverFINSent
        replayedSequenceDelta = record.translation?.sequenceDelta
    }
}

/// The connection log's occupancy and the south-side wrapper's counters, for `ftvm status`.
public struct LogStatus: Codable, Sendable, Equatable {
    public var openConnections: Int
    /// Of the open connections, those a failover would reset (their history outgrew the log).
    public var unprotectedConnections: Int
    public var slotCount: Int
    public var chunksUsed: Int
    public var chunkCount: Int
    public var chunkSize: Int
    /// Client bytes held for live connections, and what the log can hold.
    public var bytesHeld: UInt64
    public var capacityBytes: UInt64
    /// The most one connection may hold before it becomes unprotected.
    public var connectionBudgetBytes: UInt64
    public var connectionsLogged: UInt64
    public var bytesLogged: UInt64
    /// New connections served without a record because no slot was free.
    public var admittedUnlogged: UInt64
    /// Connections made unprotected, by cause (since the log was created).
    public var unprotectedOverBudget: UInt64
    public var unprotectedLogFull: UInt64
    /// Completed exchanges dropped from connections' logs, and the client bytes that freed.
    public var trims: UInt64
    public var bytesTrimmed: UInt64
    /// Records reclaimed because their client stayed silent past the idle bound.
    public var reclaimed: UInt64
    public var idleReclaimSeconds: Double
    public var corruptRecords: UInt64
    public var wrapper: SouthSide.Counters

    package init(_ usage: LogUsage, connectionBudget: UInt64, idleReclaimNanos: UInt64, wrapper: SouthSide.Counters) {
        openConnections = usage.slotsUsed
        unprotectedConnections = usage.unprotectedNow
        slotCount = usage.slotCount
        chunksUsed = usage.chunksUsed
        chunkCount = usage.chunkCount
        chunkSize = usage.chunkSize
        bytesHeld = usage.bytesHeld
        capacityBytes = UInt64(usage.chunkCount) * UInt64(usage.chunkSize)
        connectionBudgetBytes = connectionBudget
        connectionsLogged = usage.counters.connectionsOpened
        bytesLogged = usage.counters.bytesLogged
        admittedUnlogged = usage.counters.admittedUnlogged
        unprotectedOverBudget = usage.counters.unprotectedOverBudget
        unprotectedLogFull = usage.counters.unprotectedLogFull
        trims = usage.counters.trims
        bytesTrimmed = usage.counters.bytesTrimmed
        reclaimed = usage.counters.reclaimed
        idleReclaimSeconds = Double(idleReclaimNanos) / 1e9
        corruptRecords = usage.counters.corruptRecords
        self.wrapper = wrapper
    }
}
