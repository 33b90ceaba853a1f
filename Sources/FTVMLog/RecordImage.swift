import FTVMWire

/// One record copy as plain values: the writer's in-process mirror of each slot's newest copy,
/// and what a reader decodes. Trivial (no references), so arrays of it never retain or allocate.
struct RecordImage: Equatable {
    struct Flags: OptionSet, Equatable {
        let rawValue: UInt32
        static let serverHandshake = Flags(rawValue: 1 << 0)
        static let clientFIN = Flags(rawValue: 1 << 1)
        static let serverFIN = Flags(rawValue: 1 << 2)
        static let clientTimestamps = Flags(rawValue: 1 << 3)
        static let serverTimestamps = Flags(rawValue: 1 << 4)
        /// Set by an attach that had to fall back past the committed copy.
        static let rolledBack = Flags(rawValue: 1 << 5)
        /// A replay moved the server side to another guest: see `translation`.
        static let translated = Flags(rawValue: 1 << 6)
        /// The server stream checksum masks `Date:` values found by following HTTP framing.
        static let httpFraming = Flags(rawValue: 1 << 7)
        /// The framing stopped being followed: masking ends at `maskEnd`.
        static let framingStopped = Flags(rawValue: 1 << 8)
        /// The guest opened the connection (a relay server's, docs/relay-servers.md): the record's
        /// "client" is the end server, its "server" the guest.
        static let guestInitiated = Flags(rawValue: 1 << 9)
        /// `replayHeadCRC` holds the head of the guest's stream from the replay start.
        static let replayHead = Flags(rawValue: 1 << 10)
        static let all: Flags = [
            .serverHandshake, .clientFIN, .serverFIN, .clientTimestamps, .serverTimestamps, .rolledBack, .translated,
            .httpFraming, .framingStopped, .guestInitiated, .replayHead,
        ]
    }

    var sequence: UInt64 = 0
    var serial: UInt64 = 0
    var state: ConnectionState = .free
    var flags: Flags = []
    var key = FlowKey(clientAddress: 0, clientPort: 0, serverAddress: 0, serverPort: 0)
    var clientISN: UInt32 = 0
    var clientOptions: UInt32 = 0
    var serverISN: UInt32 = 0
    var serverOptions: UInt32 = 0
    var ackedByClient: UInt32 = 0
    var serverSendMax: UInt32 = 0
    var clientTSval: UInt32 = 0
    var clientTSecr: UInt32 = 0
    var serverTSval: UInt32 = 0
    var serverTSecr: UInt32 = 0
    var serverStreamCRC: UInt32 = 0
    var serverStreamEnd: UInt32 = 0
    var firstChunk: UInt32 = LogLayout.noChunk
    var lastChunk: UInt32 = LogLayout.noChunk
    var clientBytes: UInt64 = 0
    var serverStreamBytes: UInt64 = 0
    var sequenceDelta: UInt32 = 0
    var timestampDelta: UInt32 = 0
    var servingWindowScale: UInt32 = 0
    var replayClientStart: UInt64 = 0
    var replayServerStart: UInt64 = 0
    var replayServerCRC: UInt32 = 0
    var protection: Protection = .protected
    var servingClientBase: UInt64 = 0
    var servingServerBase: UInt64 = 0
    var maskEnd: UInt64 = 0
    var servingPort: UInt16 = 0
    /// The serving guest's view of the end server's window scale, plus one (0: the logged one).
    var clientWindowScaleSeen: UInt16 = 0
    var clientSequenceShift: UInt32 = 0
    var clientTimestampShift: UInt32 = 0
    var replayHeadCRC: UInt32 = 0

    /// A free record that keeps the slot's sequence going.
    static func free(sequence: UInt64) -> RecordImage {
        var image = RecordImage()
        image.sequence = sequence
        return image
    }

    var isLive: Bool { state != .free }

    /// Chunks on this record's chain (none once it is unprotected: its history was let go).
    func chainLength(_ geometry: LogGeometry) -> UInt64 {
        protection == .protected ? geometry.chainLength(bytes: clientBytes, start: replayClientStart) : 0
    }

    /// Client bytes this record holds in the log.
    var bytesHeld: UInt64 { protection == .protected ? clientBytes - replayClientStart : 0 }

    /// The next client sequence number the log expects.
    var nextClientSequence: UInt32 {
        SequenceMath.advance(clientISN, by: 1 + clientBytes + (flags.contains(.clientFIN) ? 1 : 0))
    }

    /// Where the next client payload byte goes (the FIN, if logged, comes after every byte).
    var nextPayloadSequence: UInt32 { SequenceMath.advance(clientISN, by: 1 + clientBytes) }

    /// Writes this copy at `copy` (128 bytes) and seals it with its checksum.
    func encode(into copy: UnsafeMutableRawPointer) {
        func put<T: FixedWidthInteger>(_ value: T, _ field: Int) {
            copy.storeBytes(of: value.littleEndian, toByteOffset: field, as: T.self)
        }
        put(sequence, LogLayout.sequenceField)
        put(serial, LogLayout.serialField)
        put(state.rawValue, LogLayout.stateField)
        put(flags.rawValue, LogLayout.flagsField)
        put(key.clientAddress, LogLayout.clientAddressField)
        put(key.serverAddress, LogLayout.serverAddressField)
        put(key.clientPort, LogLayout.clientPortField)
        put(key.serverPort, LogLayout.serverPortField)
        put(clientISN, LogLayout.clientISNField)
        put(clientOptions, LogLayout.clientOptionsField)
        put(serverISN, LogLayout.serverISNField)
        put(serverOptions, LogLayout.serverOptionsField)
        put(ackedByClient, LogLayout.ackedByClientField)
        put(serverSendMax, LogLayout.serverSndMaxField)
        put(clientTSval, LogLayout.clientTSvalField)
        put(clientTSecr, LogLayout.clientTSecrField)
        put(serverTSval, LogLayout.serverTSvalField)
        put(serverTSecr, LogLayout.serverTSecrField)
        put(serverStreamCRC, LogLayout.serverStreamCRCField)
        put(serverStreamEnd, LogLayout.serverStreamEndField)
        put(firstChunk, LogLayout.firstChunkField)
        put(lastChunk, LogLayout.lastChunkField)
        put(sequenceDelta, LogLayout.sequenceDeltaField)
        put(clientBytes, LogLayout.clientBytesField)
        put(serverStreamBytes, LogLayout.serverStreamBytesField)
        put(timestampDelta, LogLayout.timestampDeltaField)
        put(servingWindowScale, LogLayout.servingWindowScaleField)
        put(replayClientStart, LogLayout.replayClientStartField)
        put(replayServerStart, LogLayout.replayServerStartField)
        put(replayServerCRC, LogLayout.replayServerCRCField)
        put(protection.rawValue, LogLayout.protectionField)
        put(servingClientBase, LogLayout.servingClientBaseField)
        put(servingServerBase, LogLayout.servingServerBaseField)
        put(maskEnd, LogLayout.maskEndField)
        put(servingPort, LogLayout.servingPortField)
        put(clientWindowScaleSeen, LogLayout.clientWindowScaleSeenField)
        put(clientSequenceShift, LogLayout.clientSequenceShiftField)
        put(clientTimestampShift, LogLayout.clientTimestampShiftField)
        put(replayHeadCRC, LogLayout.replayHeadCRCField)
        put(UInt32(0), LogLayout.checksumField + 4)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: copy, count: LogLayout.checksummedLength))
        put(crc, LogLayout.checksumField)
    }

    /// Reads the copy at `copy`, or nil when its checksum or its fields say it is not one the
    /// writer sealed (torn, overwritten, never written).
    static func decode(from copy: UnsafeRawPointer) -> RecordImage? {
        func get<T: FixedWidthInteger>(_ field: Int, _: T.Type) -> T {
            T(littleEndian: copy.loadUnaligned(fromByteOffset: field, as: T.self))
        }
        let stored = get(LogLayout.checksumField, UInt32.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: copy, count: LogLayout.checksummedLength))
        guard stored == crc, let state = ConnectionState(rawValue: get(LogLayout.stateField, UInt32.self)),
            let protection = Protection(rawValue: get(LogLayout.protectionField, UInt32.self))
        else {
            return nil
        }
        var image = RecordImage()
        image.sequence = get(LogLayout.sequenceField, UInt64.self)
        image.serial = get(LogLayout.serialField, UInt64.self)
        image.state = state
        image.flags = Flags(rawValue: get(LogLayout.flagsField, UInt32.self))
        guard Flags.all.isSuperset(of: image.flags) else { return nil }
        image.key = FlowKey(
            clientAddress: get(LogLayout.clientAddressField, UInt32.self),
            clientPort: get(LogLayout.clientPortField, UInt16.self),
            serverAddress: get(LogLayout.serverAddressField, UInt32.self),
            serverPort: get(LogLayout.serverPortField, UInt16.self))
        image.clientISN = get(LogLayout.clientISNField, UInt32.self)
        image.clientOptions = get(LogLayout.clientOptionsField, UInt32.self)
        image.serverISN = get(LogLayout.serverISNField, UInt32.self)
        image.serverOptions = get(LogLayout.serverOptionsField, UInt32.self)
        image.ackedByClient = get(LogLayout.ackedByClientField, UInt32.self)
        image.serverSendMax = get(LogLayout.serverSndMaxField, UInt32.self)
        image.clientTSval = get(LogLayout.clientTSvalField, UInt32.self)
        image.clientTSecr = get(LogLayout.clientTSecrField, UInt32.self)
        image.serverTSval = get(LogLayout.serverTSvalField, UInt32.self)
        image.serverTSecr = get(LogLayout.serverTSecrField, UInt32.self)
        image.serverStreamCRC = get(LogLayout.serverStreamCRCField, UInt32.self)
        image.serverStreamEnd = get(LogLayout.serverStreamEndField, UInt32.self)
        image.firstChunk = get(LogLayout.firstChunkField, UInt32.self)
        image.lastChunk = get(LogLayout.lastChunkField, UInt32.self)
        image.clientBytes = get(LogLayout.clientBytesField, UInt64.self)
        image.serverStreamBytes = get(LogLayout.serverStreamBytesField, UInt64.self)
        image.sequenceDelta = get(LogLayout.sequenceDeltaField, UInt32.self)
        image.timestampDelta = get(LogLayout.timestampDeltaField, UInt32.self)
        image.servingWindowScale = get(LogLayout.servingWindowScaleField, UInt32.self)
        image.replayClientStart = get(LogLayout.replayClientStartField, UInt64.self)
        image.replayServerStart = get(LogLayout.replayServerStartField, UInt64.self)
        image.replayServerCRC = get(LogLayout.replayServerCRCField, UInt32.self)
        image.protection = protection
        image.servingClientBase = get(LogLayout.servingClientBaseField, UInt64.self)
        image.servingServerBase = get(LogLayout.servingServerBaseField, UInt64.self)
        image.maskEnd = get(LogLayout.maskEndField, UInt64.self)
        image.servingPort = get(LogLayout.servingPortField, UInt16.self)
        image.clientWindowScaleSeen = get(LogLayout.clientWindowScaleSeenField, UInt16.self)
        image.clientSequenceShift = get(LogLayout.clientSequenceShiftField, UInt32.self)
        image.clientTimestampShift = get(LogLayout.clientTimestampShiftField, UInt32.self)
        image.replayHeadCRC = get(LogLayout.replayHeadCRCField, UInt32.self)
        // A start past what was logged cannot have been written by the writer.
        guard image.replayClientStart <= image.clientBytes, image.replayServerStart <= image.serverStreamBytes else {
            return nil
        }
        return image
    }

    /// The public snapshot of a live record.
    func record(slot index: Int) -> ConnectionRecord {
        let server = flags.contains(.serverHandshake)
        return ConnectionRecord(
            slot: Slot(index: index, serial: serial), key: key, state: state, clientISN: clientISN,
            clientOptions: SYNOptions(encoded: clientOptions),
            serverISN: server ? serverISN : nil,
            serverOptions: server ? SYNOptions(encoded: serverOptions) : nil,
            clientBytesLogged: clientBytes, clientFINLogged: flags.contains(.clientFIN),
            nextClientSequence: nextClientSequence, serverAckedByClient: ackedByClient,
            serverSendMax: serverSendMax, serverFINSent: flags.contains(.serverFIN),
            clientTimestamps: flags.contains(.clientTimestamps)
                ? TCPTimestamps(value: clientTSval, echoReply: clientTSecr) : nil,
            serverTimestamps: flags.contains(.serverTimestamps)
                ? TCPTimestamps(value: serverTSval, echoReply: serverTSecr) : nil,
            serverStream: StreamChecksum(
                crc: serverStreamCRC, byteCount: serverStreamBytes, endSequence: serverStreamEnd),
            rolledBack: flags.contains(.rolledBack), translation: translation,
            replayStart: ReplayStart(
                clientOffset: replayClientStart, serverOffset: replayServerStart, serverCRC: replayServerCRC),
            protection: protection,
            masking: flags.contains(.httpFraming)
                ? .http(until: flags.contains(.framingStopped) ? maskEnd : nil) : .none,
            guestInitiated: flags.contains(.guestInitiated),
            replayHeadCRC: flags.contains(.replayHead) ? replayHeadCRC : nil)
    }

    var translation: Translation? {
        guard flags.contains(.translated) else { return nil }
        return Translation(
            sequenceDelta: sequenceDelta, timestampDelta: timestampDelta,
            servingWindowScale: UInt8(truncatingIfNeeded: servingWindowScale),
            servingClientBase: servingClientBase, servingServerBase: servingServerBase,
            servingPort: servingPort, clientSequenceShift: clientSequenceShift,
            clientTimestampShift: clientTimestampShift,
            clientWindowScaleSeen: clientWindowScaleSeen == 0
                ? nil : UInt8(truncatingIfNeeded: clientWindowScaleSeen - 1))
    }
}
