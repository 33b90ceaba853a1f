/// Where each field of the host↔guest channel lives. One region per guest, backed on the host by
/// `/dev/shm/<domain>-chan` and seen by the guest as BAR 2 of an ivshmem-plain PCI device.
///
/// All words are little-endian and naturally aligned, accessed as atomics. The host formats the
/// header before the guest boots; the agent refuses a region whose header is wrong, and so does a
/// restarted daemon, because trusting a stale or foreign region would mean acting on garbage.
///
/// | Offset | Field                                                                      |
/// |--------|----------------------------------------------------------------------------|
/// | 0      | header: magic, version, size                                               |
/// | 16     | heartbeat, agent state, tick, guest clock, agent pid                       |
/// | 64     | 4 service slots of 32 bytes                                                |
/// | 192    | host → agent command; 256 agent → host reply                               |
/// | 320    | host clock; 336 image version                                              |
/// | 4096   | trim ring indices (guest → host): producer, consumer, dropped (UInt64 each)|
/// | 4160   | trim ring entries: `trimRingCapacity` × 32 bytes                           |
///
/// Version 2 added the trim ring; a version-1 agent and a version-2 host refuse each other.
public enum ChannelLayout {
    /// "FTVMCHAN" read as a little-endian UInt64.
    public static let magic: UInt64 = 0x4E41_4843_4D56_5446
    public static let version: UInt32 = 2
    /// The size the host creates. ivshmem needs a power of two and libvirt sizes in MiB.
    public static let regionSize = 1 << 20
    /// The smallest region that holds every field below (the trim ring ends at 36928).
    public static let minimumSize = trimEntriesOffset + trimRingCapacity * trimEntryStride

    static let magicOffset = 0  // UInt64
    static let versionOffset = 8  // UInt32
    static let sizeOffset = 12  // UInt32: the region size the host formatted
    static let heartbeatOffset = 16  // UInt64: bumped by the agent every tick
    static let agentStateOffset = 24  // UInt32: AgentState
    static let tickMillisOffset = 28  // UInt32: the agent's tick period
    static let guestClockOffset = 32  // UInt64: guest CLOCK_REALTIME (ns) at the last tick
    static let agentPIDOffset = 40  // UInt32

    static let servicesOffset = 64
    public static let serviceSlots = 4
    static let serviceStride = 32
    // Within a service slot:
    static let serviceStateField = 0  // UInt32: ServiceState
    static let servicePIDField = 4  // UInt32
    static let serviceRestartsField = 8  // UInt32
    static let serviceExitField = 12  // Int32: exit status, or -signal
    static let servicePortField = 16  // UInt32
    static let serviceNameField = 20  // 12 bytes, NUL padded
    static let serviceNameLength = 12

    static let commandOffset = 192  // seq UInt64, code UInt32, argument UInt32, then text
    static let replyOffset = 256  // seq UInt64, status Int32, pad, then text
    static let textField = 16
    static let textLength = 48

    static let hostClockOffset = 320  // UInt64: host CLOCK_REALTIME (ns), written before a resume
    static let imageVersionOffset = 336  // 32 bytes, NUL padded: written by the agent
    static let imageVersionLength = 32

    // The trim ring: guest services' explicit trim requests, agent → host (docs/trim-api.md).
    // A single-producer (the agent), single-consumer (the host's relay thread) ring of fixed
    // entries. The indices count entries ever pushed and consumed, never wrap in practice
    // (2^64 entries), and select slot `index % trimRingCapacity`.
    //
    // Ordering: the agent writes an entry, then release-stores `producer`; the host
    // acquire-loads `producer`, reads the entry, then release-stores `consumer`; the agent
    // acquire-loads `consumer` before reusing a slot. The host trusts none of it: see
    // `Channel.popTrim()` for what it does with indices a guest could have scribbled on.
    static let trimProducerOffset = 4096  // UInt64: entries the agent ever pushed (agent writes)
    static let trimConsumerOffset = 4104  // UInt64: entries the host ever consumed (host writes)
    static let trimDroppedOffset = 4112  // UInt64: pushes refused because the ring was full (agent writes)
    static let trimEntriesOffset = 4160  // a cache line after the indices
    public static let trimRingCapacity = 1024
    static let trimEntryStride = 32
    // Within an entry (little-endian like every word here, so bytes 0..<8 are one UInt64 whose
    // low half is the address, then the client port, then the server port):
    static let trimClientAddressField = 0  // UInt32: client IPv4, first octet most significant
    static let trimClientPortField = 4  // UInt16
    static let trimServerPortField = 6  // UInt16
    static let trimClientOffsetField = 8  // UInt64: client bytes the service has consumed
    static let trimServerOffsetField = 16  // UInt64: server bytes the service has written
    static let trimReservedField = 24  // UInt64: 0
}

/// What the agent says about itself.
public enum AgentState: UInt32, Sendable, CustomStringConvertible {
    /// The host formatted the region; no agent has attached yet.
    case absent = 0
    /// The agent attached and is starting services.
    case starting = 1
    /// Every service is up: the guest can take traffic.
    case ready = 2
    /// A service could not be started or died: the guest must not be trusted with traffic.
    case failed = 3

    public var description: String {
        switch self {
        case .absent: "absent"
        case .starting: "starting"
        case .ready: "ready"
        case .failed: "failed"
        }
    }
}

/// The lifecycle of one supervised service, as the agent reports it.
public enum ServiceState: UInt32, Sendable, CustomStringConvertible {
    case unused = 0
    case starting = 1
    case running = 2
    /// Exited or was killed: `lastExit` says how. The agent reports this the instant it reaps it.
    case exited = 3
    /// Running but not answering the agent's health probe (e.g. stopped, deadlocked).
    case hung = 4

    public var description: String {
        switch self {
        case .unused: "unused"
        case .starting: "starting"
        case .running: "running"
        case .exited: "exited"
        case .hung: "hung"
        }
    }
}

/// Host → agent commands. The argument's meaning depends on the command.
public enum AgentCommand: UInt32, Sendable, CaseIterable {
    case ping = 1
    /// `echo c > /proc/sysrq-trigger`: a real kernel panic, reported through pvpanic.
    case kernelPanic = 2
    /// Starve the kernel's CPU: a SCHED_FIFO busy loop with RT throttling off.
    case kernelHang = 3
    /// SIGKILL the service in slot `argument`.
    case serviceCrash = 4
    /// SIGSTOP the service in slot `argument`: alive but answering nothing.
    case serviceHang = 5
    /// The agent exits without a word: heartbeats stop, the kernel and services go on.
    case agentExit = 6
    /// After a resume: set the wall clock from the host's clock field and announce the guest's
    /// addresses with gratuitous ARP.
    case resync = 7
    /// Take the guest's NIC down: everything runs on, but no frame leaves or arrives.
    case networkDown = 8
}
