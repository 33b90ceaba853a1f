import Atomics

/// Rebuilding the writer's state from the committed records (a restarted daemon).
extension ConnectionLog {
    /// Picks each slot's record, frees what cannot be trusted, and rebuilds the index, the free
    /// lists, the gauges and the counters. The previous writer must be dead.
    func rebuild() {
        resetWriterState()
        freeSlotCount = 0
        // Which slot owns each chunk (noChunk: none yet). Attach-time only, so it may allocate.
        var owners = [UInt32](repeating: LogLayout.noChunk, count: geometry.chunks)
        var corrupt: UInt64 = 0
        var rolledBack: UInt64 = 0
        var newestSerial = word64(LogLayout.connectionsOpenedOffset).load(ordering: .relaxed)
        var slotsInUse: UInt64 = 0
        var chunksInUse: UInt64 = 0
        var bytesHeld: UInt64 = 0
        var unprotectedNow: UInt64 = 0

        for slot in 0..<geometry.slots {
            let committed = marker(slot).load(ordering: .acquiring)
            var candidates: [RecordImage] = []
            for copy in 0..<2 {
                if let image = RecordImage.decode(from: copyPointer(slot, copy: copy)), Int(image.sequence & 1) == copy
                {
                    candidates.append(image)
                }
            }
            candidates.sort { $0.sequence > $1.sequence }
            var chosen: RecordImage?
            for candidate in candidates {
                if !candidate.isLive
                    || (index.find(candidate.key) == nil && claimChain(of: candidate, slot: slot, owners: &owners))
                {
                    chosen = candidate
                    break
                }
            }
            guard let image = chosen else {
                // Nothing verifies: the connection cannot be replayed. Both copies become free
                // ones, so a later torn write still has a valid copy to fall back on.
                corrupt += 1
                let sequence = max(committed, candidates.first?.sequence ?? 0)
                images[slot] = .free(sequence: sequence)
                publish(slot)
                publish(slot)
                freeSlots[freeSlotCount] = UInt32(slot)
                freeSlotCount += 1
                continue
            }
            // A verified copy newer than the marker is a complete write whose marker store was cut
            // off: everything it covers was written before it, so it is the state to keep. One
            // older than the marker means the committed copy was damaged after it was published:
            // the record may lack its last update, so it says so (durably) for replay to see.
            images[slot] = image
            marker(slot).store(image.sequence, ordering: .releasing)
            // Falling back to a free copy may have lost a connection: that counts as corrupt.
            if image.sequence < committed {
                if image.isLive {
                    rolledBack += 1
                    images[slot].flags.insert(.rolledBack)
                    publish(slot)
                } else {
                    corrupt += 1
                }
            }
            if image.isLive {
                index.insert(image.key, slot: slot)
                newestSerial = max(newestSerial, image.serial)
                slotsInUse += 1
                chunksInUse += image.chainLength(geometry)
                bytesHeld += image.bytesHeld
                if image.protection != .protected { unprotectedNow += 1 }
                // The last chunk's link may point at a chunk an interrupted append had taken.
                if image.lastChunk != LogLayout.noChunk { setChunkNext(Int(image.lastChunk), LogLayout.noChunk) }
            } else {
                freeSlots[freeSlotCount] = UInt32(slot)
                freeSlotCount += 1
            }
        }
        // The free slot stack pops from the top: put the lowest index there.
        freeSlots[0..<freeSlotCount].reverse()
        for chunk in stride(from: geometry.chunks - 1, through: 0, by: -1) where owners[chunk] == LogLayout.noChunk {
            pushFreeChunk(chunk)
        }

        word64(LogLayout.connectionsOpenedOffset).store(newestSerial, ordering: .relaxed)
        bump(LogLayout.corruptRecordsOffset, by: corrupt)
        bump(LogLayout.rolledBackRecordsOffset, by: rolledBack)
        bump(LogLayout.attachesOffset)
        word64(LogLayout.slotsInUseOffset).store(slotsInUse, ordering: .relaxed)
        word64(LogLayout.chunksInUseOffset).store(chunksInUse, ordering: .relaxed)
        word64(LogLayout.unprotectedNowOffset).store(unprotectedNow, ordering: .relaxed)
        word64(LogLayout.bytesHeldOffset).store(bytesHeld, ordering: .releasing)
    }

    /// Claims the chunks of `image`'s chain for `slot` if the chain is sound: every chunk in range,
    /// unclaimed, tagged with this connection, exactly as many as the byte count needs, ending at
    /// the record's last chunk. On failure nothing stays claimed.
    private func claimChain(of image: RecordImage, slot: Int, owners: inout [UInt32]) -> Bool {
        let needed = image.chainLength(geometry)
        if needed == 0 { return image.firstChunk == LogLayout.noChunk && image.lastChunk == LogLayout.noChunk }
        guard needed <= UInt64(geometry.chunks) else { return false }
        var chunk = image.firstChunk
        var claimed = 0
        var sound = true
        for step in 0..<Int(needed) {
            guard Int(chunk) < geometry.chunks, owners[Int(chunk)] == LogLayout.noChunk,
                chunkOwner(Int(chunk)) == (UInt32(slot), image.serial)
            else {
                sound = false
                break
            }
            owners[Int(chunk)] = UInt32(slot)
            claimed += 1
            if step < Int(needed) - 1 { chunk = chunkNext(Int(chunk)) }
        }
        if sound, chunk == image.lastChunk { return true }
        // Give back what this walk took (the links it followed are unchanged).
        chunk = image.firstChunk
        for step in 0..<claimed {
            owners[Int(chunk)] = LogLayout.noChunk
            if step < claimed - 1 { chunk = chunkNext(Int(chunk)) }
        }
        return false
    }
}
