import FTVMLog

/// One logged connection as `ftvm connections` shows it. Offsets count bytes from the start of
/// each direction's stream (ISN + 1), which is what a replay needs and a client can check.
public struct ConnectionStatus: Codable, Sendable, Equatable {
    public var client: String
    public var server: String
    public var state: String
    public var clientISN: UInt32
    public var serverISN: UInt32?
    /// Client → server bytes in the log (what a replay injects).
    public var clientBytesLogged: UInt64
    /// CRC32C of those bytes, so a test can check the log holds exactly what the client sent.
    public var clientBytesCRC32C: UInt32
    public var clientFIN: Bool
    /// Server → client stream offsets: what the client acknowledged, and what the guest sent.
    public var serverBytesAcked: UInt32?
    public var serverBytesSent: UInt32?
    public var serverFIN: Bool
    /// Set once a replay moved the connection to a guest other than the one that answered its
    /// SYN: that guest's ISN minus the client-view ISN (what every server sequence number is
    /// shifted by on its way to the client).
    public var replayedSequenceDelta: UInt32?

    init(_ record: ConnectionRecord, clientBytes: [UInt8]) {
        let description = record.key.description
        let sides = description.split(separator: "→")
        client = String(sides.first ?? "")
        server = String(sides.last ?? "")
        state = record.state.description
        clientISN = record.clientISN
        serverISN = record.serverISN
        clientBytesLogged = record.clientBytesLogged
        clientBytesCRC32C = CRC32C.checksum(clientBytes)
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
    public var slotCount: Int
    public var chunksUsed: Int
    public var chunkCount: Int
    public var chunkSize: Int
    public var bytesHeld: UInt64
    public var connectionsLogged: UInt64
    public var bytesLogged: UInt64
    /// New connections refused because the log was full (their SYNs were dropped; clients retry).
    public var fullRejections: UInt64
    /// Segments held back because their bytes did not fit (TCP retransmits them).
    public var fullDrops: UInt64
    public var corruptRecords: UInt64
    public var wrapper: SouthSide.Counters

    init(_ usage: LogUsage, wrapper: SouthSide.Counters) {
        openConnections = usage.slotsUsed
        slotCount = usage.slotCount
        chunksUsed = usage.chunksUsed
        chunkCount = usage.chunkCount
        chunkSize = usage.chunkSize
        bytesHeld = usage.bytesHeld
        connectionsLogged = usage.counters.connectionsOpened
        bytesLogged = usage.counters.bytesLogged
        fullRejections = usage.counters.fullRejections
        fullDrops = usage.counters.fullDrops
        corruptRecords = usage.counters.corruptRecords
        self.wrapper = wrapper
    }
}
