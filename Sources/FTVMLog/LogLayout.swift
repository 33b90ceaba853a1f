/// Where every byte of the connection log lives. One region per pair, backed by
/// `/dev/shm/<pair>-log`, host only (the guests never see it), and kept across daemon restarts.
///
/// All words are little-endian and naturally aligned. The region is three parts:
///
/// ```
/// 0                      header (256 bytes): geometry, counters, gauges
/// 256                    record table: slotCount slots × 448 bytes
/// 256 + 448·slotCount    byte log: chunkCount chunks × (16 + chunkSize) bytes
/// ```
///
/// **Header.** Geometry (magic … chunk size) is written once at format and sealed by a CRC32C,
/// so an attacher never sizes its walk over the region from a damaged word. Counters and gauges
/// follow, each a `UInt64` atomic written only by the relay thread (relaxed) and readable by
/// anyone; they are statistics and are not checksummed.
///
/// ```
/// 0    magic               UInt64  "FTVMCLOG"
/// 8    version             UInt32  2
/// 12   header size         UInt32  256
/// 16   region size         UInt64  the whole file, in bytes
/// 24   slot count          UInt32
/// 28   chunk count         UInt32
/// 32   chunk size          UInt32  payload bytes per chunk
/// 36   geometry checksum   UInt32  CRC32C of bytes 0..<36
/// 64   connections opened  UInt64  also the serial of the newest connection
/// 72   bytes logged        UInt64  client bytes ever logged
/// 80   admitted unlogged   UInt64  new connections passed without a record: no slot was free
/// 88   unprotected (full)  UInt64  connections made unprotected because the log had no room
/// 96   corrupt records     UInt64  records freed on attach because no copy verified
/// 104  rolled back         UInt64  records whose committed copy failed and the previous was used
/// 112  attaches            UInt64  times a daemon re-attached this log
/// 128  slots in use        UInt64  gauge
/// 136  chunks in use       UInt64  gauge
/// 144  bytes held          UInt64  gauge: client bytes in the log for live connections
/// 152  trims               UInt64  completed prefixes dropped from connections' logs
/// 160  bytes trimmed       UInt64  client bytes those trims freed
/// 168  unprotected (cap)   UInt64  connections made unprotected by the per-connection budget
/// 176  reclaimed           UInt64  records freed because their connection went idle
/// 184  unprotected now     UInt64  gauge: live records that are unprotected
/// 192  clients' MAC        UInt64  where frames to the clients go, as last learnt (low 48 bits; 0: none yet)
/// ```
///
/// **Record slot** (448 bytes): a commit marker, then two copies of the record (FineFRC-style
/// double buffering). An update writes the copy the marker does *not* point at, seals it with a
/// CRC32C, then release-stores its sequence number into the marker; copy `seq & 1` holds sequence
/// `seq`. A writer killed at any instruction leaves either the old copy (the new one is torn and
/// fails its checksum) or a complete new one, never a mix.
///
/// ```
/// 0    commit marker       UInt64  sequence of the published copy
/// 8    hint serial         UInt64  the connection the hint is about (ConnectionLog+BoundaryHint.swift):
/// 16   first place         20 bytes  a relay server's latest two boundaries (or its latest and the
/// 36   second place        20 bytes  request in flight), or a client's response in progress (each:
/// 56   hint checksum       UInt32  server offset UInt64, client offset UInt64, server CRC UInt32);
///                                  CRC32C of bytes 8..<56, outside the commit
/// 64   copy 0              192 bytes (even sequences)
/// 256  copy 1              192 bytes (odd sequences)
/// ```
///
/// **Record copy** (192 bytes). Sequence numbers on the wire are mod 2^32; byte counts and stream
/// offsets are not (an offset counts bytes from the side's ISN + 1).
///
/// ```
/// 0    sequence            UInt64  per slot, only grows (also across connections)
/// 8    serial              UInt64  the connection's serial (connections opened, at its open)
/// 16   state               UInt32  0 free, 1 open, 2 closing
/// 20   flags               UInt32  bit 0 server handshake seen, 1 client FIN logged,
///                                  2 server FIN sent, 3 client timestamps seen, 4 server timestamps seen,
///                                  5 rolled back (an attach fell back past the committed copy),
///                                  6 translated (a replay moved the server side: fields 92, 112,
///                                  116, 144, 152), 7 HTTP framing (the server stream CRC has
///                                  `Date:` values masked, found by following the framing),
///                                  8 framing stopped (masking ends at the mask end, field 160),
///                                  9 guest-initiated (the "client" is an end server the guest
///                                  connected to; docs/relay-servers.md; translated: fields
///                                  168-176 too), 10 replay head (field 180 holds it)
/// 24   client address      UInt32  IPv4, first octet most significant
/// 28   server address      UInt32
/// 32   client port         UInt16
/// 34   server port         UInt16
/// 36   client ISN          UInt32
/// 40   client SYN options  4 bytes (see `SYNOptions.encoded`)
/// 44   server ISN          UInt32
/// 48   server SYN options  4 bytes
/// 52   acked by client     UInt32  highest server sequence the client has ACKed
/// 56   server snd_max      UInt32  highest server sequence sent (forwarded) to the client
/// 60   client TSval        UInt32  newest timestamps seen from the client …
/// 64   client TSecr        UInt32
/// 68   server TSval        UInt32  … and from the server
/// 72   server TSecr        UInt32
/// 76   server stream CRC   UInt32  CRC32C of the server's payload in sequence order, from ISN + 1
/// 80   server stream end   UInt32  the sequence that CRC covers up to (exclusive)
/// 84   first chunk         UInt32  0xFFFF_FFFF when none
/// 88   last chunk          UInt32
/// 92   sequence delta      UInt32  serving guest's ISN − client-view ISN (translated)
/// 96   client bytes        UInt64  client payload bytes ever logged: next client seq = ISN + 1 + this
/// 104  server stream bytes UInt64  bytes the server stream CRC covers
/// 112  timestamp delta     UInt32  (translated)
/// 116  serving wscale      UInt32  (translated)
/// 120  replay client start UInt64  client bytes trimmed from the head: a replay starts here
/// 128  replay server start UInt64  the server stream offset of that exchange boundary
/// 136  replay server CRC   UInt32  the server stream CRC at that offset
/// 140  protection          UInt32  0 protected, 1 over the connection budget, 2 the log was full
/// 144  serving client base UInt64  where the serving guest's connection began (client offset) …
/// 152  serving server base UInt64  … and server offset (translated; 0 for the guest that answered the SYN)
/// 160  mask end            UInt64  server stream offset where masking ended (framing stopped)
/// 168  serving port        UInt16  a relay server's connection: the serving guest's local port (translated; 0 otherwise)
/// 170  client wscale seen  UInt16  … the end server's window scale as it was told, plus one (0: the logged one) …
/// 172  client seq shift    UInt32  … what the serving guest's view of the end server's sequence numbers adds …
/// 176  client TS shift     UInt32  … and of its TSvals (translated; docs/relay-servers.md)
/// 180  replay head CRC     UInt32  a relay server's connection: CRC32C of the guest's first 1024 bytes from the replay start (flag 10)
/// 184  checksum            UInt32  CRC32C of bytes 0..<184
/// 188  reserved            UInt32  zero
/// ```
///
/// **Chunk** (16 + chunk size bytes): a connection's client bytes are a chain of chunks, filled
/// in order; chunk k of a connection holds its client bytes [k·size, (k+1)·size). A trim frees the
/// chunks wholly before the replay start, so the chain begins with chunk ⌊start / size⌋ and the
/// record's byte count says how far it is valid; appending never changes what a committed copy
/// covers. The owner tag lets an attacher prove that a chunk a record points at really was handed
/// to that connection and not to a later one.
///
/// ```
/// 0    next chunk          UInt32  0xFFFF_FFFF when none (only meaningful before the last chunk)
/// 4    owner slot          UInt32
/// 8    owner serial        UInt64
/// 16   payload             chunk size bytes
/// ```
public enum LogLayout {
    /// "FTVMCLOG" read as a little-endian UInt64.
    public static let magic: UInt64 = 0x474F_4C43_4D56_5446
    public static let version: UInt32 = 2
    public static let headerSize = 256

    static let magicOffset = 0
    static let versionOffset = 8
    static let headerSizeOffset = 12
    static let regionSizeOffset = 16
    static let slotCountOffset = 24
    static let chunkCountOffset = 28
    static let chunkSizeOffset = 32
    static let geometryChecksumOffset = 36

    static let connectionsOpenedOffset = 64
    static let bytesLoggedOffset = 72
    static let admittedUnloggedOffset = 80
    static let unprotectedFullOffset = 88
    static let corruptRecordsOffset = 96
    static let rolledBackRecordsOffset = 104
    static let attachesOffset = 112
    static let slotsInUseOffset = 128
    static let chunksInUseOffset = 136
    static let bytesHeldOffset = 144
    static let trimsOffset = 152
    static let bytesTrimmedOffset = 160
    static let unprotectedBudgetOffset = 168
    static let reclaimedOffset = 176
    static let unprotectedNowOffset = 184
    static let clientMACOffset = 192

    static let recordsOffset = 256
    static let slotStride = 448
    static let markerField = 0
    static let hintSerialField = 8
    static let hintPreviousField = 16
    static let hintLatestField = 36
    static let hintChecksumField = 56
    static let hintChecksummedLength = 48
    static let copyFields = (64, 256)
    static let copySize = 192

    // Within a record copy:
    static let sequenceField = 0
    static let serialField = 8
    static let stateField = 16
    static let flagsField = 20
    static let clientAddressField = 24
    static let serverAddressField = 28
    static let clientPortField = 32
    static let serverPortField = 34
    static let clientISNField = 36
    static let clientOptionsField = 40
    static let serverISNField = 44
    static let serverOptionsField = 48
    static let ackedByClientField = 52
    static let serverSndMaxField = 56
    static let clientTSvalField = 60
    static let clientTSecrField = 64
    static let serverTSvalField = 68
    static let serverTSecrField = 72
    static let serverStreamCRCField = 76
    static let serverStreamEndField = 80
    static let firstChunkField = 84
    static let lastChunkField = 88
    static let sequenceDeltaField = 92
    static let clientBytesField = 96
    static let serverStreamBytesField = 104
    static let timestampDeltaField = 112
    static let servingWindowScaleField = 116
    static let replayClientStartField = 120
    static let replayServerStartField = 128
    static let replayServerCRCField = 136
    static let protectionField = 140
    static let servingClientBaseField = 144
    static let servingServerBaseField = 152
    static let maskEndField = 160
    static let servingPortField = 168
    static let clientWindowScaleSeenField = 170
    static let clientSequenceShiftField = 172
    static let clientTimestampShiftField = 176
    static let replayHeadCRCField = 180
    static let checksumField = 184
    /// The checksum covers every byte before it.
    static let checksummedLength = 184

    // Within a chunk:
    static let chunkHeaderSize = 16
    static let chunkNextField = 0
    static let chunkOwnerSlotField = 4
    static let chunkOwnerSerialField = 8
    /// "No chunk" in a link or a record.
    static let noChunk = UInt32.max

    /// The most slots a log may have.
    public static let maximumSlots = 1 << 20
    /// The most chunks a log may have (below `noChunk`, and with 2 KiB chunks 32 GiB of log).
    public static let maximumChunks = 1 << 24
    /// Chunk sizes allowed: multiples of 16 in this range.
    public static let chunkSizes = 64...(1 << 20)
}

/// The sizes a log was formatted with, and where each slot and chunk therefore sits.
struct LogGeometry: Equatable, Sendable {
    let slots: Int
    let chunks: Int
    let chunkSize: Int

    /// The geometry, or a reason it is not one this build can lay out.
    static func validated(slots: Int, chunks: Int, chunkSize: Int) -> Result<LogGeometry, GeometryProblem> {
        guard (1...LogLayout.maximumSlots).contains(slots) else {
            return .failure(GeometryProblem("slot count \(slots) is outside 1...\(LogLayout.maximumSlots)"))
        }
        guard (1...LogLayout.maximumChunks).contains(chunks) else {
            return .failure(GeometryProblem("chunk count \(chunks) is outside 1...\(LogLayout.maximumChunks)"))
        }
        guard LogLayout.chunkSizes.contains(chunkSize), chunkSize % 16 == 0 else {
            let range = "\(LogLayout.chunkSizes.lowerBound)...\(LogLayout.chunkSizes.upperBound)"
            return .failure(GeometryProblem("chunk size \(chunkSize) is not a multiple of 16 in \(range)"))
        }
        return .success(LogGeometry(slots: slots, chunks: chunks, chunkSize: chunkSize))
    }

    private init(slots: Int, chunks: Int, chunkSize: Int) {
        self.slots = slots
        self.chunks = chunks
        self.chunkSize = chunkSize
    }

    var chunkStride: Int { LogLayout.chunkHeaderSize + chunkSize }
    var chunksOffset: Int { LogLayout.recordsOffset + slots * LogLayout.slotStride }
    /// The whole region. The limits above keep this far below `Int.max`.
    var regionSize: Int { chunksOffset + chunks * chunkStride }

    func slotOffset(_ slot: Int) -> Int { LogLayout.recordsOffset + slot * LogLayout.slotStride }

    func copyOffset(_ slot: Int, copy: Int) -> Int {
        slotOffset(slot) + (copy == 0 ? LogLayout.copyFields.0 : LogLayout.copyFields.1)
    }

    func chunkOffset(_ chunk: Int) -> Int { chunksOffset + chunk * chunkStride }

    /// Chunks a chain holding `bytes` client bytes has.
    func chunksHolding(_ bytes: UInt64) -> UInt64 { (bytes + UInt64(chunkSize) - 1) / UInt64(chunkSize) }

    /// The ordinal (within its connection) of the chunk holding client byte `offset`.
    func chunkOrdinal(_ offset: UInt64) -> UInt64 { offset / UInt64(chunkSize) }

    /// Chunks on the chain of a connection that logged `bytes` client bytes and trimmed its first
    /// `start`: from the chunk holding byte `start` through the one holding the last byte (none
    /// when the trim left no partly filled chunk).
    func chainLength(bytes: UInt64, start: UInt64) -> UInt64 { chunksHolding(bytes) - chunkOrdinal(start) }
}

/// Why a geometry was refused (the text says which field and which range).
struct GeometryProblem: Error, Equatable {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
