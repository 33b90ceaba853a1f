import Atomics
import FTVMSystem
import SystemPackage

/// Why a channel region was refused.
public enum ChannelError: Error, CustomStringConvertible, Equatable {
    case tooSmall(path: String, size: Int)
    case badMagic(path: String, found: UInt64)
    case unsupportedVersion(path: String, found: UInt32)
    case sizeMismatch(path: String, header: Int, actual: Int)
    case cannotMap(path: String, errno: Errno)

    public var description: String {
        switch self {
        case .tooSmall(let path, let size):
            "channel \(path) is \(size) bytes, smaller than the \(ChannelLayout.minimumSize) the layout needs: it is not an ftvm channel"
        case .badMagic(let path, let found):
            "channel \(path) has magic 0x\(String(found, radix: 16)), not ftvm's: the region is corrupt or belongs to something else; `ftvm down` and `ftvm up` recreate it"
        case .unsupportedVersion(let path, let found):
            "channel \(path) has layout version \(found); this build speaks \(ChannelLayout.version): use a guest image built with the same ftvm version"
        case .sizeMismatch(let path, let header, let actual):
            "channel \(path) says it is \(header) bytes but \(actual) are mapped: the region was truncated or resized; recreate it with `ftvm down` and `ftvm up`"
        case .cannotMap(let path, let errno):
            "cannot map channel \(path): \(errno)"
        }
    }
}

/// A command posted by the host, as the agent receives it.
public struct PostedCommand: Sendable, Equatable {
    public var sequence: UInt64
    public var command: AgentCommand?
    public var rawCode: UInt32
    public var argument: UInt32
    public var text: String
}

/// The agent's answer to a command.
public struct CommandReply: Sendable, Equatable {
    public var sequence: UInt64
    public var status: Int32
    public var text: String
}

/// A snapshot of one service slot.
public struct ServiceReport: Sendable, Equatable {
    public var name: String
    public var port: UInt32
    public var state: ServiceState
    public var pid: UInt32
    public var restarts: UInt32
    /// Exit status (>= 0) or the negated signal number of the last exit.
    public var lastExit: Int32
}

/// The host↔guest channel over a mapped region; see `ChannelLayout` for the bytes.
///
/// Ordering: data fields are written first and published by a release store of the word that
/// says "new" (the heartbeat, a sequence number); readers acquire that word before the data.
public final class Channel: @unchecked Sendable {
    private let region: MappedFile
    /// Trim-ring resyncs seen by this process (see `popTrim()`). Kept in the host's own memory,
    /// not in the region: a guest that scribbles on the ring's indices could as easily reset a
    /// counter there, and hide what it did.
    let trimResyncCounter = ManagedAtomic<UInt64>(0)
    public var path: String { region.path }

    /// Maps an existing region and checks its header; never trusts a region it cannot vouch for.
    public init(attaching region: MappedFile) throws(ChannelError) {
        self.region = region
        try validate()
    }

    /// Formats `region` as an empty channel (host side, before the guest boots).
    public init(formatting region: MappedFile) {
        self.region = region
        region.base.initializeMemory(as: UInt8.self, repeating: 0, count: min(region.size, ChannelLayout.regionSize))
        word32(ChannelLayout.versionOffset).store(ChannelLayout.version, ordering: .relaxed)
        word32(ChannelLayout.sizeOffset).store(UInt32(region.size), ordering: .relaxed)
        word64(ChannelLayout.magicOffset).store(ChannelLayout.magic, ordering: .releasing)
    }

    /// Opens the region at `path` (creating and formatting it when `create` is set).
    public static func open(path: String, create: Bool) throws(ChannelError) -> Channel {
        let region: MappedFile
        do {
            region = try MappedFile(path: path, createSize: create ? ChannelLayout.regionSize : nil)
        } catch {
            throw .cannotMap(path: path, errno: error)
        }
        return create ? Channel(formatting: region) : try Channel(attaching: region)
    }

    /// Re-checks the header (a guest or a bug could have overwritten it).
    public func validate() throws(ChannelError) {
        guard region.size >= ChannelLayout.minimumSize else {
            throw .tooSmall(path: region.path, size: region.size)
        }
        let magic = word64(ChannelLayout.magicOffset).load(ordering: .acquiring)
        guard magic == ChannelLayout.magic else { throw .badMagic(path: region.path, found: magic) }
        let version = word32(ChannelLayout.versionOffset).load(ordering: .relaxed)
        guard version == ChannelLayout.version else {
            throw .unsupportedVersion(path: region.path, found: version)
        }
        let size = Int(word32(ChannelLayout.sizeOffset).load(ordering: .relaxed))
        guard size == region.size else {
            throw .sizeMismatch(path: region.path, header: size, actual: region.size)
        }
    }

    // MARK: Heartbeat and agent state

    public var heartbeat: UInt64 { word64(ChannelLayout.heartbeatOffset).load(ordering: .acquiring) }

    /// One agent tick: records the guest clock, then publishes the new count.
    public func beat(guestClockNanos: UInt64) {
        word64(ChannelLayout.guestClockOffset).store(guestClockNanos, ordering: .relaxed)
        word64(ChannelLayout.heartbeatOffset).wrappingIncrement(ordering: .releasing)
    }

    public var guestClockNanos: UInt64 { word64(ChannelLayout.guestClockOffset).load(ordering: .relaxed) }

    public var agentState: AgentState {
        get { AgentState(rawValue: word32(ChannelLayout.agentStateOffset).load(ordering: .acquiring)) ?? .failed }
        set { word32(ChannelLayout.agentStateOffset).store(newValue.rawValue, ordering: .releasing) }
    }

    public var tickMillis: UInt32 {
        get { word32(ChannelLayout.tickMillisOffset).load(ordering: .relaxed) }
        set { word32(ChannelLayout.tickMillisOffset).store(newValue, ordering: .relaxed) }
    }

    public var agentPID: UInt32 {
        get { word32(ChannelLayout.agentPIDOffset).load(ordering: .relaxed) }
        set { word32(ChannelLayout.agentPIDOffset).store(newValue, ordering: .relaxed) }
    }

    public var imageVersion: String {
        get { readText(at: ChannelLayout.imageVersionOffset, length: ChannelLayout.imageVersionLength) }
        set { writeText(newValue, at: ChannelLayout.imageVersionOffset, length: ChannelLayout.imageVersionLength) }
    }

    /// The host's wall clock for the agent to adopt after a resume.
    public var hostClockNanos: UInt64 {
        get { word64(ChannelLayout.hostClockOffset).load(ordering: .acquiring) }
        set { word64(ChannelLayout.hostClockOffset).store(newValue, ordering: .releasing) }
    }

    // MARK: Services

    /// Describes slot `index` (agent side): name and port, state `.starting`.
    public func declareService(_ index: Int, name: String, port: UInt32) {
        let slot = serviceSlot(index)
        writeText(name, at: slot + ChannelLayout.serviceNameField, length: ChannelLayout.serviceNameLength)
        word32(slot + ChannelLayout.servicePortField).store(port, ordering: .relaxed)
        word32(slot + ChannelLayout.serviceStateField).store(ServiceState.starting.rawValue, ordering: .releasing)
    }

    /// Records that the service in slot `index` runs as `pid`.
    public func serviceStarted(_ index: Int, pid: UInt32, isRestart: Bool) {
        let slot = serviceSlot(index)
        word32(slot + ChannelLayout.servicePIDField).store(pid, ordering: .relaxed)
        if isRestart { word32(slot + ChannelLayout.serviceRestartsField).wrappingIncrement(ordering: .relaxed) }
        word32(slot + ChannelLayout.serviceStateField).store(ServiceState.running.rawValue, ordering: .releasing)
    }

    /// Records that the service in slot `index` ended with `status` (exit code, or -signal).
    public func serviceExited(_ index: Int, status: Int32) {
        let slot = serviceSlot(index)
        word32(slot + ChannelLayout.serviceExitField).store(UInt32(bitPattern: status), ordering: .relaxed)
        word32(slot + ChannelLayout.serviceStateField).store(ServiceState.exited.rawValue, ordering: .releasing)
    }

    /// Records whether the service in slot `index` answers its health probe.
    public func serviceResponsive(_ index: Int, _ responsive: Bool) {
        let state: ServiceState = responsive ? .running : .hung
        word32(serviceSlot(index) + ChannelLayout.serviceStateField).store(state.rawValue, ordering: .releasing)
    }

    /// The services in brief, without allocating (the relay's close fence reads it): whether every
    /// declared service runs and answers its probe, and how often they were restarted in total.
    public var serviceSummary: (allRunning: Bool, restarts: UInt32) {
        var allRunning = true
        var restarts: UInt32 = 0
        for index in 0..<ChannelLayout.serviceSlots {
            let slot = serviceSlot(index)
            let raw = word32(slot + ChannelLayout.serviceStateField).load(ordering: .acquiring)
            guard raw != ServiceState.unused.rawValue else { continue }
            if raw != ServiceState.running.rawValue { allRunning = false }
            restarts &+= word32(slot + ChannelLayout.serviceRestartsField).load(ordering: .relaxed)
        }
        return (allRunning, restarts)
    }

    /// Every declared service slot.
    public var services: [ServiceReport] {
        (0..<ChannelLayout.serviceSlots).compactMap { index in
            let slot = serviceSlot(index)
            let raw = word32(slot + ChannelLayout.serviceStateField).load(ordering: .acquiring)
            let state = ServiceState(rawValue: raw) ?? .exited
            guard state != .unused else { return nil }
            return ServiceReport(
                name: readText(at: slot + ChannelLayout.serviceNameField, length: ChannelLayout.serviceNameLength),
                port: word32(slot + ChannelLayout.servicePortField).load(ordering: .relaxed),
                state: state,
                pid: word32(slot + ChannelLayout.servicePIDField).load(ordering: .relaxed),
                restarts: word32(slot + ChannelLayout.serviceRestartsField).load(ordering: .relaxed),
                lastExit: Int32(bitPattern: word32(slot + ChannelLayout.serviceExitField).load(ordering: .relaxed)))
        }
    }

    // MARK: Command mailbox (one outstanding command at a time)

    /// Host side: posts a command and returns its sequence number.
    @discardableResult
    public func post(_ command: AgentCommand, argument: UInt32 = 0, text: String = "") -> UInt64 {
        let base = ChannelLayout.commandOffset
        let sequence = word64(base).load(ordering: .relaxed) &+ 1
        word32(base + 8).store(command.rawValue, ordering: .relaxed)
        word32(base + 12).store(argument, ordering: .relaxed)
        writeText(text, at: base + ChannelLayout.textField, length: ChannelLayout.textLength)
        word64(base).store(sequence, ordering: .releasing)
        return sequence
    }

    /// Agent side: the newest command, if its sequence is not `handled`.
    public func pendingCommand(after handled: UInt64) -> PostedCommand? {
        let base = ChannelLayout.commandOffset
        let sequence = word64(base).load(ordering: .acquiring)
        guard sequence != handled else { return nil }
        let code = word32(base + 8).load(ordering: .relaxed)
        return PostedCommand(
            sequence: sequence, command: AgentCommand(rawValue: code), rawCode: code,
            argument: word32(base + 12).load(ordering: .relaxed),
            text: readText(at: base + ChannelLayout.textField, length: ChannelLayout.textLength))
    }

    /// The sequence of the last command posted (the agent starts from it, so a command posted to a
    /// previous agent is not run twice).
    public var lastPostedSequence: UInt64 { word64(ChannelLayout.commandOffset).load(ordering: .acquiring) }

    /// Agent side: answers command `sequence`.
    public func reply(to sequence: UInt64, status: Int32, text: String) {
        let base = ChannelLayout.replyOffset
        word32(base + 8).store(UInt32(bitPattern: status), ordering: .relaxed)
        writeText(text, at: base + ChannelLayout.textField, length: ChannelLayout.textLength)
        word64(base).store(sequence, ordering: .releasing)
    }

    /// Host side: the latest reply.
    public var lastReply: CommandReply {
        let base = ChannelLayout.replyOffset
        let sequence = word64(base).load(ordering: .acquiring)
        return CommandReply(
            sequence: sequence, status: Int32(bitPattern: word32(base + 8).load(ordering: .relaxed)),
            text: readText(at: base + ChannelLayout.textField, length: ChannelLayout.textLength))
    }

    // MARK: Raw access

    private func serviceSlot(_ index: Int) -> Int {
        precondition((0..<ChannelLayout.serviceSlots).contains(index), "service slot out of range")
        return ChannelLayout.servicesOffset + index * ChannelLayout.serviceStride
    }

    func word64(_ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (region.base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }

    func word32(_ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (region.base + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    private func readText(at offset: Int, length: Int) -> String {
        let bytes = UnsafeRawBufferPointer(start: region.base + offset, count: length)
        let end = bytes.firstIndex(of: 0) ?? length
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    private func writeText(_ text: String, at offset: Int, length: Int) {
        let destination = UnsafeMutableRawBufferPointer(start: region.base + offset, count: length)
        destination.initializeMemory(as: UInt8.self, repeating: 0)
        // Whole characters only, leaving room for the terminating NUL.
        var utf8: [UInt8] = []
        for character in text {
            guard utf8.count + character.utf8.count < length else { break }
            utf8.append(contentsOf: character.utf8)
        }
        destination.copyBytes(from: utf8)
    }
}
