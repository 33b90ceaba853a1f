import Atomics

/// The trim ring: explicit trim requests from guest services, carried by the agent to the host's
/// relay. Layout and ordering are in `ChannelLayout`; who sends them, and what they mean, is in
/// docs/trim-api.md.
extension Channel {
    /// Agent side (the only producer): appends `request`. Returns false, and counts it in
    /// `trimsDropped`, when the host has not consumed the oldest `trimRingCapacity` entries yet.
    /// A dropped trim costs nothing but log space: a later trim of the same connection supersedes it.
    @discardableResult
    public func pushTrim(_ request: TrimRequest) -> Bool {
        let producer = word64(ChannelLayout.trimProducerOffset).load(ordering: .relaxed)
        let consumer = word64(ChannelLayout.trimConsumerOffset).load(ordering: .acquiring)
        // `&-`: indices are free-running; a host that ran ahead (it cannot, unless broken) reads as
        // a full ring rather than as room to overwrite unread entries.
        guard producer &- consumer < UInt64(ChannelLayout.trimRingCapacity) else {
            word64(ChannelLayout.trimDroppedOffset).wrappingIncrement(ordering: .relaxed)
            return false
        }
        let entry = Self.trimEntry(producer)
        let ports = UInt64(request.clientPort) << 32 | UInt64(request.serverPort) << 48
        word64(entry).store(UInt64(request.clientAddress) | ports, ordering: .relaxed)
        word64(entry + ChannelLayout.trimClientOffsetField).store(request.clientOffset, ordering: .relaxed)
        word64(entry + ChannelLayout.trimServerOffsetField).store(request.serverOffset, ordering: .relaxed)
        word64(entry + ChannelLayout.trimReservedField).store(0, ordering: .relaxed)
        word64(ChannelLayout.trimProducerOffset).store(producer &+ 1, ordering: .releasing)
        return true
    }

    /// Host side (the only consumer, the relay thread): the oldest unread request, or nil.
    /// Allocates nothing and never traps, whatever the guest wrote.
    ///
    /// The guest owns `producer` and every entry, so both are untrusted: an entry's fields are
    /// whatever the guest put there (the relay checks a request against its own log before acting
    /// on it), and an index that claims more than `trimRingCapacity` unread entries is a buggy
    /// or hostile guest. Then the host skips everything up to `producer` (a resync: those slots
    /// hold no request it can tell apart from garbage), counts it in `trimResyncs`, and returns nil.
    /// Reads are whole atomic words at offsets computed modulo the capacity: never out of range,
    /// never torn within a field.
    public func popTrim() -> TrimRequest? {
        let consumer = word64(ChannelLayout.trimConsumerOffset).load(ordering: .relaxed)
        let producer = word64(ChannelLayout.trimProducerOffset).load(ordering: .acquiring)
        let unread = producer &- consumer
        guard unread != 0 else { return nil }
        guard unread <= UInt64(ChannelLayout.trimRingCapacity) else {
            word64(ChannelLayout.trimConsumerOffset).store(producer, ordering: .releasing)
            trimResyncCounter.wrappingIncrement(ordering: .relaxed)
            return nil
        }
        let entry = Self.trimEntry(consumer)
        let head = word64(entry).load(ordering: .relaxed)
        let request = TrimRequest(
            clientAddress: UInt32(truncatingIfNeeded: head),
            clientPort: UInt16(truncatingIfNeeded: head >> 32),
            serverPort: UInt16(truncatingIfNeeded: head >> 48),
            clientOffset: word64(entry + ChannelLayout.trimClientOffsetField).load(ordering: .relaxed),
            serverOffset: word64(entry + ChannelLayout.trimServerOffsetField).load(ordering: .relaxed))
        word64(ChannelLayout.trimConsumerOffset).store(consumer &+ 1, ordering: .releasing)
        return request
    }

    /// Pushes the agent refused because the ring was full (written by the agent, so for display only).
    public var trimsDropped: UInt64 { word64(ChannelLayout.trimDroppedOffset).load(ordering: .relaxed) }

    /// Host side: how often this process found the ring's indices impossible and skipped to the
    /// guest's producer index (see `popTrim()`). Not in the region, so a restarted daemon starts at 0.
    public var trimResyncs: UInt64 { trimResyncCounter.load(ordering: .relaxed) }

    /// The byte offset of the slot that ring index `index` uses.
    private static func trimEntry(_ index: UInt64) -> Int {
        ChannelLayout.trimEntriesOffset + Int(index % UInt64(ChannelLayout.trimRingCapacity))
            * ChannelLayout.trimEntryStride
    }
}
