/// A first-in first-out queue of frames in one buffer allocated up front: what the relay holds
/// while a takeover runs (client frames) and behind its close fence (a guest's FIN and RST).
///
/// Each entry is a 32-byte header (length, the guest port it came from, a tag, a time) and the
/// frame.
/// Nothing is allocated after `init`; a frame that does not fit is refused (the caller counts
/// it as dropped, and TCP sends it again). Single-threaded: the relay thread only.
final class FrameQueue {
    struct Entry {
        var frame: UnsafeMutableRawBufferPointer
        var port: UInt16
        var tag: UInt64
        var time: UInt64
    }

    private static let headerSize = 32
    private let storage: UnsafeMutableRawBufferPointer
    private var head = 0
    private var tail = 0
    private(set) var count = 0

    init(capacityBytes: Int) {
        storage = .allocate(byteCount: capacityBytes, alignment: 16)
    }

    deinit { storage.deallocate() }

    var isEmpty: Bool { count == 0 }

    /// Appends a copy of `frame`; false when there is no room.
    func push(_ frame: UnsafeRawBufferPointer, port: UInt16 = 0, tag: UInt64 = 0, time: UInt64 = 0) -> Bool {
        let needed = Self.headerSize + (frame.count + 15) & ~15
        if tail + needed > storage.count, head > 0 {
            // Move what is queued to the front (rare: the queue drains whole most of the time).
            let used = tail - head
            storage.baseAddress!.copyMemory(from: storage.baseAddress! + head, byteCount: used)
            head = 0
            tail = used
        }
        guard tail + needed <= storage.count else { return false }
        storage.storeBytes(of: UInt32(frame.count), toByteOffset: tail, as: UInt32.self)
        storage.storeBytes(of: port, toByteOffset: tail + 4, as: UInt16.self)
        storage.storeBytes(of: tag, toByteOffset: tail + 8, as: UInt64.self)
        storage.storeBytes(of: time, toByteOffset: tail + 16, as: UInt64.self)
        if let source = frame.baseAddress, frame.count > 0 {
            (storage.baseAddress! + tail + Self.headerSize).copyMemory(from: source, byteCount: frame.count)
        }
        tail += needed
        count += 1
        return true
    }

    /// The oldest entry, valid until the next `pop` or `push`.
    var first: Entry? {
        guard count > 0 else { return nil }
        let length = Int(storage.load(fromByteOffset: head, as: UInt32.self))
        let start = head + Self.headerSize
        return Entry(
            frame: UnsafeMutableRawBufferPointer(rebasing: storage[start..<(start + length)]),
            port: storage.load(fromByteOffset: head + 4, as: UInt16.self),
            tag: storage.load(fromByteOffset: head + 8, as: UInt64.self),
            time: storage.load(fromByteOffset: head + 16, as: UInt64.self))
    }

    func pop() {
        guard count > 0 else { return }
        let length = Int(storage.load(fromByteOffset: head, as: UInt32.self))
        head += Self.headerSize + (length + 15) & ~15
        count -= 1
        if count == 0 {
            head = 0
            tail = 0
        }
    }
}
