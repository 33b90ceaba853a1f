import Atomics

/// The read side: shared memory only, safe from any thread while the relay writes.
extension ConnectionLog {
    /// Every live (open or closing) connection, as last committed.
    public func records() -> [ConnectionRecord] {
        var result: [ConnectionRecord] = []
        for slot in 0..<geometry.slots {
            if let image = committedImage(slot), image.isLive { result.append(image.record(slot: slot)) }
        }
        return result
    }

    /// The committed record of `slot`, if that connection is still live.
    public func record(_ slot: Slot) -> ConnectionRecord? {
        guard (0..<geometry.slots).contains(slot.index), let image = committedImage(slot.index), image.isLive,
            image.serial == slot.serial
        else { return nil }
        return image.record(slot: slot.index)
    }

    /// Every client byte logged for `slot`, in order from the client's ISN + 1: what a replay
    /// injects into the backup. Empty when the connection is gone (closed, or its slot reused).
    public func clientBytes(_ slot: Slot) -> [UInt8] {
        guard (0..<geometry.slots).contains(slot.index), let image = committedImage(slot.index), image.isLive,
            image.serial == slot.serial, image.clientBytes <= UInt64(geometry.chunks) * UInt64(geometry.chunkSize)
        else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(image.clientBytes))
        let complete = bytes.withUnsafeMutableBytes { destination in
            copyChain(of: image, into: destination)
        }
        // The chain's chunks cannot be reused while the connection lives; check it still does.
        guard complete, let after = committedImage(slot.index), after.serial == slot.serial, after.isLive else {
            return []
        }
        return bytes
    }

    /// How full the log is, and its counters.
    public var usage: LogUsage {
        func load(_ offset: Int) -> UInt64 { word64(offset).load(ordering: .relaxed) }
        return LogUsage(
            slotsUsed: Int(truncatingIfNeeded: load(LogLayout.slotsInUseOffset)), slotCount: geometry.slots,
            chunksUsed: Int(truncatingIfNeeded: load(LogLayout.chunksInUseOffset)), chunkCount: geometry.chunks,
            chunkSize: geometry.chunkSize, bytesHeld: load(LogLayout.bytesHeldOffset),
            counters: LogCounters(
                connectionsOpened: load(LogLayout.connectionsOpenedOffset),
                bytesLogged: load(LogLayout.bytesLoggedOffset),
                fullRejections: load(LogLayout.fullRejectionsOffset),
                fullDrops: load(LogLayout.fullDropsOffset),
                corruptRecords: load(LogLayout.corruptRecordsOffset),
                rolledBackRecords: load(LogLayout.rolledBackRecordsOffset),
                attaches: load(LogLayout.attachesOffset)))
    }

    // MARK: Internals

    /// The copy the marker points at, read seqlock-style: the writer overwrites a copy only after
    /// publishing the other one, so a copy read while the marker stayed put was not being written.
    /// nil if it does not verify (the log is damaged) or the writer kept it moving for 100 tries.
    func committedImage(_ slot: Int) -> RecordImage? {
        let word = marker(slot)
        for _ in 0..<100 {
            let sequence = word.load(ordering: .acquiring)
            let image = RecordImage.decode(from: copyPointer(slot, copy: Int(sequence & 1)))
            atomicMemoryFence(ordering: .acquiring)
            guard word.load(ordering: .relaxed) == sequence else { continue }
            guard let image, image.sequence == sequence else { return nil }
            return image
        }
        return nil
    }

    /// Copies the bytes of `image`'s chain into `destination` (exactly `clientBytes` long).
    /// False when the chain leaves the chunk range or does not end at the record's last chunk.
    func copyChain(of image: RecordImage, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        let chunkSize = geometry.chunkSize
        var chunk = image.firstChunk
        var copied = 0
        while copied < destination.count {
            guard Int(chunk) < geometry.chunks else { return false }
            let part = min(chunkSize, destination.count - copied)
            (destination.baseAddress! + copied).copyMemory(from: chunkPayload(Int(chunk)), byteCount: part)
            copied += part
            if copied < destination.count { chunk = chunkNext(Int(chunk)) }
        }
        return destination.count == 0 ? image.firstChunk == LogLayout.noChunk : chunk == image.lastChunk
    }
}
