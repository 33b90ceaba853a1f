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

    /// The client bytes the log holds for `slot`, in order from its replay start (the client's
    /// ISN + 1 until a trim): what a replay injects into the backup. Empty when the connection is
    /// gone (closed, or its slot reused) or unprotected.
    public func clientBytes(_ slot: Slot) -> [UInt8] {
        guard (0..<geometry.slots).contains(slot.index), let image = committedImage(slot.index), image.isLive,
            image.serial == slot.serial,
            image.chainLength(geometry) <= UInt64(geometry.chunks)
        else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(image.bytesHeld))
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
                admittedUnlogged: load(LogLayout.admittedUnloggedOffset),
                unprotectedLogFull: load(LogLayout.unprotectedFullOffset),
                unprotectedOverBudget: load(LogLayout.unprotectedBudgetOffset),
                trims: load(LogLayout.trimsOffset),
                bytesTrimmed: load(LogLayout.bytesTrimmedOffset),
                reclaimed: load(LogLayout.reclaimedOffset),
                corruptRecords: load(LogLayout.corruptRecordsOffset),
                rolledBackRecords: load(LogLayout.rolledBackRecordsOffset),
                attaches: load(LogLayout.attachesOffset)),
            unprotectedNow: Int(truncatingIfNeeded: load(LogLayout.unprotectedNowOffset)))
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

    /// Copies the bytes `image`'s chain holds into `destination` (exactly `bytesHeld` long): from
    /// the replay start, which lies inside the chain's first chunk. False when the chain leaves the
    /// chunk range or does not end at the record's last chunk.
    func copyChain(of image: RecordImage, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        let chunks = image.chainLength(geometry)
        guard chunks > 0 else { return image.firstChunk == LogLayout.noChunk && destination.count == 0 }
        let chunkSize = geometry.chunkSize
        var chunk = image.firstChunk
        var within = Int(image.replayClientStart % UInt64(chunkSize))
        var copied = 0
        for step in 0..<chunks {
            guard Int(chunk) < geometry.chunks else { return false }
            let part = min(chunkSize - within, destination.count - copied)
            (destination.baseAddress! + copied).copyMemory(from: chunkPayload(Int(chunk)) + within, byteCount: part)
            copied += part
            within = 0
            if step < chunks - 1 { chunk = chunkNext(Int(chunk)) }
        }
        return copied == destination.count && chunk == image.lastChunk
    }
}
