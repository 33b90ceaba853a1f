import Atomics
import FTVMSystem
import Glibc
import SystemPackage

/// The FT-TCP connection log: every client connection and every client byte the primary may have
/// seen, in a pre-allocated shared-memory file (`LogLayout`) that outlives the daemon.
///
/// **One writer.** The write path (`open` … `close`, and `lookup`) belongs to the relay's packet
/// loop, a plain thread: no locks, and no allocation per call (slots, chunks and the in-process
/// index are sized at create/attach). Calling it from two threads at once corrupts the log.
/// Likewise only one process may hold a log for writing; `attach` assumes the previous writer is
/// dead.
///
/// **Any number of readers.** `records()`, `record(_:)`, `clientBytes(_:)` and `usage` read only
/// the shared memory, through each slot's commit marker (acquire), and are safe from any thread
/// while the writer runs.
///
/// **Output commit** (design invariant 1): the relay forwards a client segment to the primary only
/// when `appendClientPayload` (or `appendClientFIN`) says `mayForward`. Each update is published
/// before the call returns, so a byte the primary can have received is in a committed record.
///
/// **Bounded** (invariants 5 and 8): the log bounds protection, never service. A new connection
/// with no free slot passes unlogged (`open` returns nil, counted); one admitted with fewer than
/// `admissionReserve` free chunks, or whose history since its replay start would outgrow
/// `connectionBudget` or the free chunks, becomes *unprotected*: its chunks are freed, its frames
/// pass unlogged, and a failover resets it cleanly. Completed exchanges leave the log (`trim`),
/// so a protected connection holds only what is in flight. No byte ever reaches the primary of a
/// protected connection unlogged.
public final class ConnectionLog: @unchecked Sendable {
    let region: MappedFile
    let geometry: LogGeometry

    /// The file this log lives in.
    public var path: String { region.path }

    // Writer state (relay thread only). Mirrors of the committed records, free stacks, the index.
    let images: UnsafeMutableBufferPointer<RecordImage>
    let freeSlots: UnsafeMutableBufferPointer<UInt32>
    var freeSlotCount = 0
    let freeChunks: UnsafeMutableBufferPointer<UInt32>
    var freeChunkCount = 0
    let index: FlowIndex

    /// Chunks that must stay free for a new connection to be admitted, so connections already
    /// logged can keep growing when the log runs low. At least 1 (a connection that cannot log a
    /// byte is useless); defaults to 1/64 of the chunks. In-process policy, not stored in the file.
    public var admissionReserve: Int {
        didSet { admissionReserve = max(1, admissionReserve) }
    }

    /// The most client bytes one connection may hold (from its replay start on) before it becomes
    /// unprotected: so that one upload cannot take the log from everyone else. No limit but the
    /// log's size unless set (the pair's configuration sets it). In-process policy, not stored in
    /// the file.
    public var connectionBudget: UInt64 = .max

    private init(region: MappedFile, geometry: LogGeometry) {
        self.region = region
        self.geometry = geometry
        images = .allocate(capacity: geometry.slots)
        images.initialize(repeating: RecordImage())
        freeSlots = .allocate(capacity: geometry.slots)
        freeSlots.initialize(repeating: 0)
        freeChunks = .allocate(capacity: geometry.chunks)
        freeChunks.initialize(repeating: 0)
        index = FlowIndex(slots: geometry.slots, seed: UInt64.random(in: .min ... .max))
        admissionReserve = max(1, geometry.chunks / 64)
    }

    deinit {
        images.deallocate()
        freeSlots.deallocate()
        freeChunks.deallocate()
    }

    // MARK: Create and attach

    /// Creates the log at `path`, replacing any file there, and formats it empty.
    ///
    /// The whole file is reserved up front (`posix_fallocate`), so a full `/dev/shm` fails here,
    /// with `.noSpace`, and never later as a SIGBUS on the packet path. The magic is written last:
    /// a daemon killed while formatting leaves a file `attach` refuses.
    ///
    /// - Parameters:
    ///   - slots: connection records (the most connections logged at once).
    ///   - chunks: chunks in the byte log.
    ///   - chunkSize: client payload bytes per chunk (a multiple of 16; 2048 suits MTU-sized segments).
    public static func create(
        path: String, slots: Int, chunks: Int, chunkSize: Int = 2048
    )
        throws(LogError) -> ConnectionLog
    {
        let geometry: LogGeometry
        switch LogGeometry.validated(slots: slots, chunks: chunks, chunkSize: chunkSize) {
        case .success(let valid): geometry = valid
        case .failure(let problem): throw .invalidGeometry(problem.reason)
        }
        try preallocate(path: path, size: geometry.regionSize)
        let region: MappedFile
        do {
            region = try MappedFile(path: path)
        } catch {
            throw .cannotMap(path: path, errno: error)
        }
        guard region.size == geometry.regionSize else {
            throw .sizeMismatch(path: path, header: UInt64(geometry.regionSize), actual: region.size)
        }
        let log = ConnectionLog(region: region, geometry: geometry)
        log.format()
        return log
    }

    /// Maps an existing log, checks its header, and rebuilds the writer's state from the committed
    /// records: the index, the free slots and chunks, the gauges.
    ///
    /// For each slot the newest copy that verifies wins (its checksum, its sequence parity, and its
    /// chunk chain: every chunk in range, tagged with this connection, claimed once, ending at the
    /// record's last chunk). A verified copy newer than the commit marker is a complete update
    /// whose marker store was cut off, and is kept. A record none of whose copies verifies is
    /// freed and counted in `corruptRecords` (so is one whose fallback is a free copy: a connection
    /// may be lost). One whose committed copy failed but whose previous copy verifies is kept at
    /// that previous state, counted in `rolledBackRecords`, and marked `rolledBack` so a replay
    /// does not trust it. The header is never repaired: a bad one is an error that says what to do.
    ///
    /// Attach-time work allocates (a chunk ownership map); the write path afterwards does not.
    public static func attach(path: String) throws(LogError) -> ConnectionLog {
        let region: MappedFile
        do {
            region = try MappedFile(path: path)
        } catch {
            throw .cannotMap(path: path, errno: error)
        }
        let geometry = try validateHeader(region)
        let log = ConnectionLog(region: region, geometry: geometry)
        log.rebuild()
        return log
    }

    private static func preallocate(path: String, size: Int) throws(LogError) {
        if unlink(path) != 0, errno != ENOENT {
            throw .cannotCreate(path: path, errno: Errno(rawValue: errno))
        }
        let fd: Int32
        do {
            fd = try Syscall.retrying { Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o660) }
        } catch {
            throw .cannotCreate(path: path, errno: error)
        }
        defer { Glibc.close(fd) }
        var result: Int32
        repeat { result = posix_fallocate(fd, 0, off_t(size)) } while result == EINTR
        if result == ENOSPC {
            unlink(path)
            throw .noSpace(path: path, bytes: size)
        }
        if result != 0 {
            // A file system without fallocate: grow it sparse; format() touches every record.
            do {
                try Syscall.retrying { ftruncate(fd, off_t(size)) }
            } catch {
                unlink(path)
                throw .cannotCreate(path: path, errno: error)
            }
        }
    }

    static func validateHeader(_ region: MappedFile) throws(LogError) -> LogGeometry {
        let path = region.path
        guard region.size >= LogLayout.headerSize else { throw .tooSmall(path: path, size: region.size) }
        let base = UnsafeRawPointer(region.base)
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let magic = get(LogLayout.magicOffset, UInt64.self)
        guard magic == LogLayout.magic else { throw .badMagic(path: path, found: magic) }
        let version = get(LogLayout.versionOffset, UInt32.self)
        guard version == LogLayout.version else { throw .unsupportedVersion(path: path, found: version) }
        let regionSize = get(LogLayout.regionSizeOffset, UInt64.self)
        guard regionSize == UInt64(region.size) else {
            throw .sizeMismatch(path: path, header: regionSize, actual: region.size)
        }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: LogLayout.geometryChecksumOffset))
        guard crc == get(LogLayout.geometryChecksumOffset, UInt32.self) else { throw .badHeaderChecksum(path: path) }
        guard get(LogLayout.headerSizeOffset, UInt32.self) == UInt32(LogLayout.headerSize) else {
            throw .badGeometry(path: path, reason: "header size is not \(LogLayout.headerSize)")
        }
        let geometry: LogGeometry
        switch LogGeometry.validated(
            slots: Int(get(LogLayout.slotCountOffset, UInt32.self)),
            chunks: Int(get(LogLayout.chunkCountOffset, UInt32.self)),
            chunkSize: Int(get(LogLayout.chunkSizeOffset, UInt32.self)))
        {
        case .success(let valid): geometry = valid
        case .failure(let problem): throw .badGeometry(path: path, reason: problem.reason)
        }
        guard UInt64(geometry.regionSize) == regionSize else {
            throw .badGeometry(
                path: path, reason: "slots and chunks need \(geometry.regionSize) bytes, the header says \(regionSize)")
        }
        return geometry
    }

    /// Writes an empty log: every slot a sealed free copy 0, every chunk free, magic last.
    private func format() {
        let base = region.base
        base.initializeMemory(as: UInt8.self, repeating: 0, count: geometry.chunksOffset)
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        }
        put(LogLayout.version, LogLayout.versionOffset)
        put(UInt32(LogLayout.headerSize), LogLayout.headerSizeOffset)
        put(UInt64(geometry.regionSize), LogLayout.regionSizeOffset)
        put(UInt32(geometry.slots), LogLayout.slotCountOffset)
        put(UInt32(geometry.chunks), LogLayout.chunkCountOffset)
        put(UInt32(geometry.chunkSize), LogLayout.chunkSizeOffset)
        for slot in 0..<geometry.slots {
            RecordImage.free(sequence: 0).encode(into: base + geometry.copyOffset(slot, copy: 0))
        }
        // Touch every chunk header (pages of a sparse file get their memory now, not mid-append).
        for chunk in 0..<geometry.chunks {
            chunkHeader(chunk, next: LogLayout.noChunk, ownerSlot: LogLayout.noChunk, ownerSerial: 0)
        }
        resetWriterState()
        for chunk in stride(from: geometry.chunks - 1, through: 0, by: -1) { pushFreeChunk(chunk) }
        // The magic goes in after the rest, sealed with the geometry checksum.
        put(LogLayout.magic, LogLayout.magicOffset)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: LogLayout.geometryChecksumOffset))
        word32(LogLayout.geometryChecksumOffset).store(crc, ordering: .releasing)
    }

    /// Empties the in-process state: every slot free (LIFO stack, lowest index on top), no chunks.
    func resetWriterState() {
        index.removeAll()
        freeSlotCount = 0
        for slot in stride(from: geometry.slots - 1, through: 0, by: -1) {
            images[slot] = .free(sequence: 0)
            freeSlots[freeSlotCount] = UInt32(slot)
            freeSlotCount += 1
        }
        freeChunkCount = 0
    }

    // MARK: Raw access

    /// Where frames to the clients go (a MAC in the low 48 bits; 0: not learnt yet), kept in the
    /// header so that a restarted daemon's replay can reach a client that has not spoken since.
    public var clientMAC: UInt64 {
        get { word64(LogLayout.clientMACOffset).load(ordering: .relaxed) }
        set { word64(LogLayout.clientMACOffset).store(newValue, ordering: .relaxed) }
    }

    func word64(_ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (region.base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }

    func word32(_ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (region.base + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    func marker(_ slot: Int) -> UnsafeAtomic<UInt64> { word64(geometry.slotOffset(slot) + LogLayout.markerField) }

    func copyPointer(_ slot: Int, copy: Int) -> UnsafeMutableRawPointer {
        region.base + geometry.copyOffset(slot, copy: copy)
    }

    func chunkPointer(_ chunk: Int) -> UnsafeMutableRawPointer { region.base + geometry.chunkOffset(chunk) }

    func chunkPayload(_ chunk: Int) -> UnsafeMutableRawPointer { chunkPointer(chunk) + LogLayout.chunkHeaderSize }

    func chunkNext(_ chunk: Int) -> UInt32 {
        UInt32(
            littleEndian: chunkPointer(chunk).loadUnaligned(fromByteOffset: LogLayout.chunkNextField, as: UInt32.self))
    }

    func setChunkNext(_ chunk: Int, _ next: UInt32) {
        chunkPointer(chunk).storeBytes(of: next.littleEndian, toByteOffset: LogLayout.chunkNextField, as: UInt32.self)
    }

    func chunkOwner(_ chunk: Int) -> (slot: UInt32, serial: UInt64) {
        let pointer = chunkPointer(chunk)
        return (
            UInt32(littleEndian: pointer.loadUnaligned(fromByteOffset: LogLayout.chunkOwnerSlotField, as: UInt32.self)),
            UInt64(
                littleEndian: pointer.loadUnaligned(fromByteOffset: LogLayout.chunkOwnerSerialField, as: UInt64.self))
        )
    }

    func chunkHeader(_ chunk: Int, next: UInt32, ownerSlot: UInt32, ownerSerial: UInt64) {
        let pointer = chunkPointer(chunk)
        pointer.storeBytes(of: next.littleEndian, toByteOffset: LogLayout.chunkNextField, as: UInt32.self)
        pointer.storeBytes(of: ownerSlot.littleEndian, toByteOffset: LogLayout.chunkOwnerSlotField, as: UInt32.self)
        pointer.storeBytes(of: ownerSerial.littleEndian, toByteOffset: LogLayout.chunkOwnerSerialField, as: UInt64.self)
    }

    func pushFreeChunk(_ chunk: Int) {
        freeChunks[freeChunkCount] = UInt32(chunk)
        freeChunkCount += 1
    }

    /// Adds `delta` to a header counter. Single writer: a relaxed load and store, no RMW needed.
    func bump(_ offset: Int, by delta: UInt64 = 1) {
        let word = word64(offset)
        word.store(word.load(ordering: .relaxed) &+ delta, ordering: .relaxed)
    }

    func drop(_ offset: Int, by delta: UInt64) {
        let word = word64(offset)
        word.store(word.load(ordering: .relaxed) &- delta, ordering: .relaxed)
    }
}
