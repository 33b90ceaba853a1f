import FTVMLog
import FTVMSystem
import Glibc
import SystemPackage

/// Per slot, the first bytes of the response a followed HTTP connection is sending: what a
/// replay reads the response's validators from to resume it with a range request instead of
/// regenerating it (`RangeResume`, docs/replay.md). The log keeps no server bytes, only their
/// checksum, so the heads are kept apart from it: in a file of their own in `/dev/shm` beside
/// the log when the daemon gives one (`persistent(path:slots:)`), so that a restarted daemon's
/// replay resumes the responses the dead one was sending; in this process's memory otherwise.
///
/// The file, `slots × 2080` bytes after a 64-byte header:
///
/// ```
/// header  0  magic "FTVMHEAD"   UInt64
///         8  version 1          UInt32
///        12  slot count         UInt32
///        16  capacity           UInt32  bytes kept per response (2048)
/// slot    0  serial             UInt64  the connection the head is of (its log serial)
///         8  start              UInt64  server stream offset of the response's first byte (max: none)
///        16  count              UInt32  bytes kept
///        20  checksum           UInt32  CRC32C of those bytes
///        32  bytes              capacity bytes
/// ```
///
/// A head is written by appending bytes, then the checksum, then the count, so a daemon killed
/// at any point leaves a head whose checksum fails (or a shorter one that verifies): it reads as
/// none, and the replay regenerates as it would have. A head is only ever read for the
/// connection (serial) and response (start) it was kept for.
///
/// Relay thread only. On the packet path (`begin`, `keep`, `forget`) nothing allocates.
final class ResponseHeads {
    /// At most this many bytes of a response are kept: heads longer than that are not resumed.
    static let capacity = 2048
    static let magic: UInt64 = 0x4441_4548_4D56_5446  // "FTVMHEAD", little-endian
    static let version: UInt32 = 1
    static let headerSize = 64
    static let stride = 32 + capacity

    private let base: UnsafeMutableRawPointer
    private let slots: Int
    /// The mapping of the file, or nil when the heads live in this process's memory.
    private let file: MappedFile?

    /// Heads in this process's memory: a restarted daemon has none, and its replays regenerate.
    init(slots: Int) {
        self.slots = slots
        file = nil
        base = .allocate(byteCount: Self.headerSize + slots * Self.stride, alignment: 16)
        Self.format(base, slots: slots)
    }

    /// Heads kept in the file at `path`: taken up when it holds heads for `slots` slots (a
    /// restarted daemon), made afresh otherwise. The whole file is reserved up front, so a full
    /// `/dev/shm` fails here and never later as a SIGBUS on the packet path.
    static func persistent(path: String, slots: Int) throws(Errno) -> ResponseHeads {
        let size = headerSize + slots * stride
        let region: MappedFile
        if let existing = try? MappedFile(path: path), existing.size == size,
            Self.header(existing.base) == (magic, version, UInt32(slots), UInt32(capacity))
        {
            region = existing
        } else {
            unlink(path)
            let fd = try Syscall.retrying { Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
            var result: Int32
            repeat { result = posix_fallocate(fd, 0, off_t(size)) } while result == EINTR
            close(fd)
            guard result == 0 else {
                unlink(path)
                throw Errno(rawValue: result)
            }
            region = try MappedFile(path: path)
            format(region.base, slots: slots)
        }
        return ResponseHeads(file: region, slots: slots)
    }

    private init(file: MappedFile, slots: Int) {
        self.file = file
        self.slots = slots
        base = file.base
    }

    deinit {
        if file == nil { base.deallocate() }
    }

    private static func header(_ base: UnsafeRawPointer) -> (UInt64, UInt32, UInt32, UInt32) {
        (
            base.load(as: UInt64.self), base.load(fromByteOffset: 8, as: UInt32.self),
            base.load(fromByteOffset: 12, as: UInt32.self), base.load(fromByteOffset: 16, as: UInt32.self)
        )
    }

    private static func format(_ base: UnsafeMutableRawPointer, slots: Int) {
        for index in 0..<slots {
            let slot = base + headerSize + index * stride
            slot.storeBytes(of: UInt64.max, toByteOffset: 8, as: UInt64.self)
            slot.storeBytes(of: UInt32(0), toByteOffset: 16, as: UInt32.self)
        }
        base.storeBytes(of: version, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: UInt32(slots), toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: UInt32(capacity), toByteOffset: 16, as: UInt32.self)
        base.storeBytes(of: magic, as: UInt64.self)  // last: a half-made file is not taken up
    }

    private func slot(_ index: Int) -> UnsafeMutableRawPointer { base + Self.headerSize + index * Self.stride }
    private func serial(_ at: UnsafeRawPointer) -> UInt64 { at.load(as: UInt64.self) }
    private func start(_ at: UnsafeRawPointer) -> UInt64 { at.load(fromByteOffset: 8, as: UInt64.self) }
    private func count(_ at: UnsafeRawPointer) -> Int { Int(at.load(fromByteOffset: 16, as: UInt32.self)) }
    private func checksum(_ at: UnsafeRawPointer) -> UInt32 { at.load(fromByteOffset: 20, as: UInt32.self) }

    /// A response of `slot`'s connection begins at server stream offset `offset`: what was kept
    /// is dropped.
    func begin(_ slot: Slot, at offset: UInt64) {
        let at = self.slot(slot.index)
        at.storeBytes(of: UInt32(0), toByteOffset: 16, as: UInt32.self)
        at.storeBytes(of: UInt32(0), toByteOffset: 20, as: UInt32.self)
        at.storeBytes(of: slot.serial, as: UInt64.self)
        at.storeBytes(of: offset, toByteOffset: 8, as: UInt64.self)
    }

    /// Keeps what `segment` (server bytes from stream offset `offset`, in order) adds to the
    /// kept response's first `capacity` bytes.
    func keep(_ slot: Slot, _ segment: UnsafeRawBufferPointer, at offset: UInt64) {
        let at = self.slot(slot.index)
        let start = start(at)
        let kept = count(at)
        guard start != .max, serial(at) == slot.serial, kept < Self.capacity else { return }
        let next = start + UInt64(kept)
        guard offset <= next, offset + UInt64(segment.count) > next else { return }
        let from = Int(next - offset)
        let added = min(segment.count - from, Self.capacity - kept)
        let source = UnsafeRawBufferPointer(rebasing: segment[from..<(from + added)])
        (at + 32 + kept).copyMemory(from: source.baseAddress!, byteCount: added)
        at.storeBytes(of: CRC32C.checksum(source, continuing: checksum(at)), toByteOffset: 20, as: UInt32.self)
        at.storeBytes(of: UInt32(kept + added), toByteOffset: 16, as: UInt32.self)
    }

    /// The kept first bytes of `slot`'s response that began at `offset`, if that is the one
    /// kept and its bytes verify.
    func response(_ slot: Slot, startingAt offset: UInt64) -> [UInt8]? {
        let at = self.slot(slot.index)
        let kept = count(at)
        guard serial(at) == slot.serial, start(at) == offset, kept > 0, kept <= Self.capacity else { return nil }
        let bytes = UnsafeRawBufferPointer(start: at + 32, count: kept)
        guard CRC32C.checksum(bytes) == checksum(at) else { return nil }
        return Array(bytes)
    }

    /// The slot's connection ended: nothing is kept for it.
    func forget(_ slot: Slot) {
        let at = self.slot(slot.index)
        at.storeBytes(of: UInt64.max, toByteOffset: 8, as: UInt64.self)
        at.storeBytes(of: UInt32(0), toByteOffset: 16, as: UInt32.self)
    }
}
