/// The writer's in-process map from `FlowKey` to slot: open addressing with linear probing in two
/// fixed arrays sized at init (a power of two at least twice the slot count, so probes stay
/// short), and backward-shift deletion instead of tombstones, so it never degrades or grows.
/// Nothing allocates after init.
///
/// Clients choose their own addresses and ports, so the hash is keyed with a per-process random
/// seed: a client cannot precompute keys that pile onto one probe run.
final class FlowIndex {
    private let mask: Int
    /// Slot + 1 per bucket; 0 is an empty bucket.
    private let entries: UnsafeMutableBufferPointer<UInt32>
    private let keys: UnsafeMutableBufferPointer<FlowKey>
    private let seed: UInt64

    init(slots: Int, seed: UInt64) {
        var capacity = 8
        while capacity < 2 * slots { capacity <<= 1 }
        mask = capacity - 1
        entries = .allocate(capacity: capacity)
        entries.initialize(repeating: 0)
        keys = .allocate(capacity: capacity)
        keys.initialize(repeating: FlowKey(clientAddress: 0, clientPort: 0, serverAddress: 0, serverPort: 0))
        self.seed = seed
    }

    deinit {
        entries.deallocate()
        keys.deallocate()
    }

    /// The slot holding `key`.
    func find(_ key: FlowKey) -> Int? {
        var bucket = home(key)
        while true {
            let entry = entries[bucket]
            if entry == 0 { return nil }
            if keys[bucket] == key { return Int(entry) - 1 }
            bucket = (bucket + 1) & mask
        }
    }

    /// Adds `key → slot`; false (and no change) when `key` is already present. Never full: there
    /// are more buckets than slots.
    @discardableResult
    func insert(_ key: FlowKey, slot: Int) -> Bool {
        var bucket = home(key)
        while entries[bucket] != 0 {
            if keys[bucket] == key { return false }
            bucket = (bucket + 1) & mask
        }
        entries[bucket] = UInt32(slot + 1)
        keys[bucket] = key
        return true
    }

    /// Removes `key`; returns the slot it mapped to.
    @discardableResult
    func remove(_ key: FlowKey) -> Int? {
        var hole = home(key)
        while true {
            if entries[hole] == 0 { return nil }
            if keys[hole] == key { break }
            hole = (hole + 1) & mask
        }
        let slot = Int(entries[hole]) - 1
        // Backward shift: pull later members of the probe run into the hole when the hole lies
        // between their home bucket and where they sit, so every run stays unbroken.
        var next = hole
        while true {
            next = (next + 1) & mask
            if entries[next] == 0 { break }
            let homeOfNext = home(keys[next])
            let distanceToHole = (hole - homeOfNext) & mask
            let distanceToNext = (next - homeOfNext) & mask
            if distanceToHole < distanceToNext {
                entries[hole] = entries[next]
                keys[hole] = keys[next]
                hole = next
            }
        }
        entries[hole] = 0
        return slot
    }

    func removeAll() {
        entries.update(repeating: 0)
    }

    private func home(_ key: FlowKey) -> Int {
        var hash = seed ^ (UInt64(key.clientAddress) << 32 | UInt64(key.serverAddress))
        hash = Self.mix(hash) ^ (UInt64(key.clientPort) << 16 | UInt64(key.serverPort))
        return Int(truncatingIfNeeded: Self.mix(hash)) & mask
    }

    /// The SplitMix64 finalizer: every input bit reaches every output bit.
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
