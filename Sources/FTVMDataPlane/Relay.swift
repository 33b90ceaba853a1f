import FTVMChannel
import FTVMSystem
import FTVMWire
import Foundation
import Glibc
import Logging
import Synchronization
import SystemPackage

/// Moves Ethernet frames between the clients' tap and the guests' links.
///
/// Each guest's link is a tap whose other end is its QEMU, read and written through an
/// AF_PACKET socket; the clients' tap is opened with IFF_VNET_HDR. Both carry a virtio-net
/// header before every frame, so TSO super-frames (up to 64 KiB) and partial checksums pass the
/// relay whole, both ways, and the kernel cuts them where a link cannot take them. A link is
/// known by a number (`GuestLink.id`), which also names its tap.
///
/// Only the active guest is connected to the uplink: frames from any other guest (the backup
/// while it boots, a fenced primary) are dropped here, which is what keeps one identity on the
/// wire (invariant 3). Switching is one atomic store, so the control plane never blocks the
/// packet path and the packet path never takes a lock.
///
/// The loop runs on its own thread (a plain poll(2) loop, not Swift concurrency): it owns its
/// buffers and does not allocate per frame.
public final class Relay: Sendable {
    /// The host's TLS terminator's two taps (`TerminatorRoute` says which frame goes where):
    /// the front's frames go to the clients untouched, the back's are client frames like the
    /// uplink's. Both opened with `offload`, like the uplink.
    public struct TerminatorTaps: Sendable {
        public let front: TapDevice
        public let back: TapDevice
        public let route: TerminatorRoute

        public init(front: TapDevice, back: TapDevice, route: TerminatorRoute) {
            self.front = front
            self.back = back
            self.route = route
        }
    }

    public struct Counters: Sendable, Codable, Equatable {
        public var framesToGuest: UInt64 = 0
        public var framesToClients: UInt64 = 0
        /// The Ethernet bytes of those frames.
        public var bytesToGuest: UInt64 = 0
        public var bytesToClients: UInt64 = 0
        public var framesDropped: UInt64 = 0
        /// Client frames held while a takeover ran, then delivered to the new guest.
        public var framesHeld: UInt64 = 0
        /// Guest FINs and RSTs held by the close fence, and those dropped because their guest
        /// was fenced meanwhile.
        public var closesFenced: UInt64 = 0
        public var closesSuppressed: UInt64 = 0
        /// Connections an upgrade moved to the new guest at an exchange boundary, mid-drain.
        public var movedAtBoundary: UInt64 = 0

        public init() {}
    }

    private let tap: TapDevice
    private let terminator: TerminatorTaps?
    /// The guests' links by id; the loop polls a copy, taken again when `linksChanged` moves.
    private let links = Mutex<[UInt16: PacketSocket]>([:])
    private let linksChanged = Atomic<UInt64>(0)
    /// Logs client connections, enforces output commit and replays; nil relays frames untouched.
    package let southSide: SouthSide?
    /// The link of the guest connected to the uplink; 0 connects nobody.
    private let activePort = Atomic<UInt32>(0)
    /// While set, client frames are held (a takeover is running), not forwarded.
    private let holding = Atomic<Bool>(false)
    /// Bumped by `beginReplay`; the loop replays when it differs from what it handled.
    private let replayRequests = Atomic<UInt64>(0)
    /// Whether the requested replay covers only the connections pinned to a drained guest.
    private let replayPinnedOnly = Atomic<Bool>(false)
    private let replayUpToSerial = Atomic<UInt64>(.max)
    /// An upgrade's drain: the old guest's link (0: none), the new guest's link a request to
    /// start draining switches to, the requests and how many the loop handled, and how many
    /// pinned connections are still open.
    private let drainPort = Atomic<UInt32>(0)
    private let drainTarget = Atomic<UInt32>(0)
    private let drainRequests = Atomic<UInt64>(0)
    private let drainsHandled = Atomic<UInt64>(0)
    private let pinnedAtSwitch = Atomic<Int>(0)
    private let draining = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let toGuest = Atomic<UInt64>(0)
    private let toClients = Atomic<UInt64>(0)
    private let bytesToGuest = Atomic<UInt64>(0)
    private let bytesToClients = Atomic<UInt64>(0)
    private let dropped = Atomic<UInt64>(0)
    private let held = Atomic<UInt64>(0)
    private let fenced = Atomic<UInt64>(0)
    private let suppressed = Atomic<UInt64>(0)
    private let movedAtBoundary = Atomic<UInt64>(0)
    /// When (Monotonic nanos) the connected guest's first frame reached the clients; 0 = not yet.
    private let firstFrameNanos = Atomic<UInt64>(0)
    /// When the relay announced the service for the connected guest (`startReplay`); 0 = not yet.
    private let announcedNanos = Atomic<UInt64>(0)
    /// Wakes the loop's poll the moment another thread asks it for something (a replay, a drain,
    /// stopping), instead of at its next timeout or frame: after a fence nothing else may come.
    private let wakeup: Wakeup
    /// The guests' channels by link: the close fence releases a FIN or RST only once the agent
    /// of the guest that sent it vouches for it (`agentVouches`).
    private let watched = Mutex<[UInt16: Channel]>([:])
    private let finished = Mutex<Bool>(false)
    /// The loop thread's SCHED_FIFO priority (0: normal scheduling), and what it got.
    private let realtimePriority: Int32
    private let scheduling = Mutex<RealtimeScheduling?>(nil)
    private let logger: Logger

    /// `tap` must be opened with `offload` (frames after a virtio-net header).
    package init(
        tap: TapDevice, southSide: SouthSide?, terminator: TerminatorTaps? = nil, realtimePriority: Int32 = 0,
        logger: Logger
    ) throws(Errno) {
        wakeup = try Wakeup()
        self.tap = tap
        self.terminator = terminator
        self.southSide = southSide
        self.realtimePriority = realtimePriority
        self.logger = logger
    }

    /// What the loop thread runs under (nil before it started).
    public var threadScheduling: RealtimeScheduling? { scheduling.withLock { $0 } }

    /// Starts reading guest link `id` (before its guest starts, so no frame of it is missed).
    public func attach(link id: UInt16, socket: PacketSocket) {
        links.withLock { $0[id] = socket }
        linksChanged.add(1, ordering: .releasing)
    }

    /// Stops reading guest link `id` (its guest is gone); the socket closes once the loop let go.
    public func detach(link id: UInt16) {
        links.withLock { $0[id] = nil }
        linksChanged.add(1, ordering: .releasing)
    }

    /// Connects the guest on link `port` to the uplink (nil: nobody). From the moment this
    /// returns no frame from the previous guest reaches a client.
    public func connect(guestPort port: UInt16?) {
        firstFrameNanos.store(0, ordering: .relaxed)
        announcedNanos.store(0, ordering: .relaxed)
        southSide?.forgetAwaitedAnswers()
        activePort.store(UInt32(port ?? 0), ordering: .sequentiallyConsistent)
    }

    /// The primary is suspected: from now on nothing it sends reaches a client, and client frames
    /// are held (not dropped) until `beginReplay`.
    public func suspect() {
        holding.store(true, ordering: .sequentiallyConsistent)
        connect(guestPort: nil)
    }

    /// The guest now connected runs: announce the service on its behalf, replay every logged
    /// connection into it (or, after a drain, those still pinned to the drained guest; or those
    /// logged up to `upToSerial`: the failed guest's), then deliver the held client frames.
    public func beginReplay(pinnedOnly: Bool = false, upToSerial: UInt64 = .max) {
        replayPinnedOnly.store(pinnedOnly, ordering: .sequentiallyConsistent)
        replayUpToSerial.store(upToSerial, ordering: .sequentiallyConsistent)
        replayRequests.add(1, ordering: .sequentiallyConsistent)
        wakeup.signal()
    }

    /// Which channel the close fence consults for frames from the guest at `port`.
    public func watch(_ channel: Channel, port: UInt16) {
        watched.withLock { $0[port] = channel }
    }

    /// Starts an upgrade's drain: every connection open now stays with the active guest, which
    /// becomes the draining one; everything else (new connections, ARP) goes to the guest at
    /// `newPort`. Returns the number of connections pinned, once the relay thread has switched.
    public func beginDrain(to newPort: UInt16) -> Int {
        let handled = drainsHandled.load(ordering: .acquiring)
        drainTarget.store(UInt32(newPort), ordering: .sequentiallyConsistent)
        drainRequests.add(1, ordering: .sequentiallyConsistent)
        wakeup.signal()
        while drainsHandled.load(ordering: .acquiring) == handled { usleep(1000) }
        return pinnedAtSwitch.load(ordering: .acquiring)
    }

    /// Pinned connections still open on the draining guest.
    public var connectionsDraining: Int { draining.load(ordering: .relaxed) }

    /// Cuts the draining guest off: from now on nothing it sends reaches a client. Its pinned
    /// connections' client bytes are still logged, for `beginReplay(pinnedOnly: true)`.
    public func endDrain() {
        drainPort.store(0, ordering: .sequentiallyConsistent)
    }

    /// The latest replay's progress and outcome.
    public var replayReport: ReplayReport? { southSide?.splicer.latestReport }

    /// When the relay announced the service for the connected guest (Monotonic nanos), or nil.
    public var announcedAt: UInt64? {
        let at = announcedNanos.load(ordering: .acquiring)
        return at == 0 ? nil : at
    }

    /// Waits until the connected guest's first frame of its own has gone to the clients (the
    /// relay's announcement does not count); returns when that happened (Monotonic nanos), or
    /// nil after `timeoutMillis`.
    public func waitForFirstFrame(timeoutMillis: Int) -> UInt64? {
        for _ in 0..<max(1, timeoutMillis) {
            let at = firstFrameNanos.load(ordering: .acquiring)
            if at != 0 { return at }
            usleep(1000)
        }
        return nil
    }

    public var connectedPort: UInt16? {
        let port = activePort.load(ordering: .acquiring)
        return port == 0 ? nil : UInt16(port)
    }

    public var counters: Counters {
        var counters = Counters()
        counters.framesToGuest = toGuest.load(ordering: .relaxed)
        counters.framesToClients = toClients.load(ordering: .relaxed)
        counters.bytesToGuest = bytesToGuest.load(ordering: .relaxed)
        counters.bytesToClients = bytesToClients.load(ordering: .relaxed)
        counters.framesDropped = dropped.load(ordering: .relaxed)
        counters.framesHeld = held.load(ordering: .relaxed)
        counters.closesFenced = fenced.load(ordering: .relaxed)
        counters.closesSuppressed = suppressed.load(ordering: .relaxed)
        counters.movedAtBoundary = movedAtBoundary.load(ordering: .relaxed)
        return counters
    }

    public func start() {
        Thread { [self] in run() }.start()
    }

    /// Asks the loop to end and waits (at most about one poll period) until it has.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        wakeup.signal()
        for _ in 0..<50 where !finished.withLock({ $0 }) { usleep(10_000) }
    }

    /// The relay thread's own state: its buffers and queues, allocated once.
    private final class Loop: FrameSink {
        let relay: Relay
        let fromClients = FrameBatch()
        let fromGuests = FrameBatch()
        /// Client frames of pinned connections, for the draining guest.
        let toDraining = FrameBatch()
        var lastDrainCount: UInt64 = 0
        /// Frames the replay makes for the guest, sent at the end of each round.
        let outbox = FrameBatch()
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameBatch.slotSize, alignment: 16)
        /// The relay's copy of its links, and the `linksChanged` count it was taken at.
        var links: [(id: UInt16, socket: PacketSocket)] = []
        var linksSeen = UInt64.max
        let heldFrames = FrameQueue(capacityBytes: 32 << 20)
        let fencedCloses = FrameQueue(capacityBytes: 4 << 20)
        /// Replays asked for (`replayRequests`) that the loop started; from 0, so that one asked
        /// for before the loop ran is not lost.
        var replaysHandled: UInt64 = 0

        init(relay: Relay) { self.relay = relay }
        deinit { scratch.deallocate() }

        // The relay's own frames carry complete checksums: a plain header goes before each.
        func toGuest(_ build: (UnsafeMutableRawBufferPointer) -> Int) {
            if outbox.isFull { flush() }
            let length = Relay.buildPlain(into: outbox.nextSlot, build)
            if length > 0 { outbox.commitSlot(length: length) }
        }

        func toClients(_ build: (UnsafeMutableRawBufferPointer) -> Int) {
            let length = Relay.buildPlain(into: scratch, build)
            guard length > 0 else { return }
            try? relay.writeToClients(UnsafeMutableRawBufferPointer(rebasing: scratch[..<length]))
        }

        /// A client's frame as it came, header and all (a held one).
        func toGuest(keepingHeaderOf slot: UnsafeMutableRawBufferPointer) {
            if outbox.isFull { flush() }
            outbox.nextSlot.copyMemory(from: UnsafeRawBufferPointer(slot))
            outbox.commitSlot(length: slot.count)
        }

        func flush() {
            let port = relay.activePort.load(ordering: .acquiring)
            if port != 0, outbox.count > 0 { try? send(outbox, to: UInt16(port)) }
            outbox.reset()
        }

        /// Sends a batch to the guest on link `id` (nothing when that link is gone).
        func send(_ batch: FrameBatch, to id: UInt16) throws(Errno) {
            guard let link = links.first(where: { $0.id == id }) else { return }
            try link.socket.send(batch)
            relay.countToGuest(batch)
        }

        /// Takes a fresh copy of the links when one was attached or detached; whether it did.
        func refreshLinks() -> Bool {
            let changed = relay.linksChanged.load(ordering: .acquiring)
            guard changed != linksSeen else { return false }
            linksSeen = changed
            links = relay.links.withLock { $0.map { (id: $0.key, socket: $0.value) } }
            return true
        }
    }

    /// A plain virtio-net header, then the frame `build` writes after it; 0 when it writes none.
    private static func buildPlain(
        into slot: UnsafeMutableRawBufferPointer, _ build: (UnsafeMutableRawBufferPointer) -> Int
    ) -> Int {
        VirtioNetHeader.plain.write(to: slot)
        let length = build(UnsafeMutableRawBufferPointer(rebasing: slot[VirtioNetHeader.size...]))
        return length > 0 ? VirtioNetHeader.size + length : 0
    }

    /// A header and frame as a link carries them: the Ethernet frame and whether its checksum is
    /// partial. nil for a read too short to hold a header and an Ethernet header.
    private static func split(
        _ slot: UnsafeMutableRawBufferPointer
    ) -> (frame: UnsafeMutableRawBufferPointer, partial: Bool)? {
        guard slot.count > VirtioNetHeader.size + 14, let header = VirtioNetHeader(UnsafeRawBufferPointer(slot)) else {
            return nil
        }
        return (UnsafeMutableRawBufferPointer(rebasing: slot[VirtioNetHeader.size...]), header.needsChecksum)
    }

    private func run() {
        CurrentThread.name("ftvm-relay")
        let loop = Loop(relay: self)
        defer { finished.withLock { $0 = true } }
        var fds: [pollfd] = []
        // The uplink, the terminator's front and back when there is one, then the links.
        let taps = [tap] + (terminator.map { [$0.front, $0.back] } ?? [])
        let policy = RealtimeScheduling.applyToCurrentThread(priority: realtimePriority)
        scheduling.withLock { $0 = policy }
        logger.info("relay thread scheduling", metadata: ["policy": "\(policy)"])
        while !stopping.load(ordering: .acquiring) {
            if loop.refreshLinks() {
                fds = taps.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
                fds += loop.links.map { pollfd(fd: $0.socket.fd, events: Int16(POLLIN), revents: 0) }
                fds.append(pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0))
            }
            // Short naps while something waits on a clock (a replay, a fenced close).
            let busy = !loop.fencedCloses.isEmpty || (southSide?.splicer.pendingCount ?? 0) > 0
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), busy ? 5 : 100) }
            // (Cleared before the requests are read: one made after this wakes the next poll.)
            if ready > 0, fds[fds.count - 1].revents != 0 { wakeup.clear() }
            do {
                let requests = replayRequests.load(ordering: .acquiring)
                if requests != loop.replaysHandled {
                    loop.replaysHandled = requests
                    startReplay(loop)
                }
                if drainRequests.load(ordering: .acquiring) != drainsHandled.load(ordering: .relaxed) {
                    startDrain()
                }
                if let southSide, southSide.draining, Monotonic.nanos() &- loop.lastDrainCount > 50_000_000 {
                    loop.lastDrainCount = Monotonic.nanos()
                    // A pinned connection between two exchanges moves to the new guest at once.
                    let moved = southSide.moveIdlePinned(now: loop.lastDrainCount, sink: loop)
                    movedAtBoundary.add(UInt64(moved), ordering: .relaxed)
                    draining.store(southSide.pinnedOpen(), ordering: .relaxed)
                }
                if ready > 0 {
                    if fds[0].revents != 0 { try drainTap(tap, loop) }
                    if let terminator {
                        if fds[1].revents != 0 { try drainFront(terminator.front, loop) }
                        if fds[2].revents != 0 { try drainTap(terminator.back, loop) }
                    }
                    for (index, link) in loop.links.enumerated() where fds[index + taps.count].revents != 0 {
                        try drainGuest(link.id, link.socket, loop)
                    }
                }
                if !loop.fencedCloses.isEmpty { try releaseCloses(loop) }
                let now = Monotonic.nanos()
                if let southSide {
                    takeExplicitTrims(southSide)
                    southSide.sweep(now: now)
                    southSide.splicer.tick(now: now, sink: loop)
                    let port = UInt16(truncatingIfNeeded: activePort.load(ordering: .acquiring))
                    if southSide.probeDue(port: port, now: now) { probe(southSide, loop) }
                }
                loop.flush()
            } catch {
                logger.error("relay I/O failed", metadata: ["error": "\(error)"])
                usleep(10_000)
            }
        }
    }

    /// Hands the south side the explicit trims the serving guests posted in their channels (the
    /// active guest's, and while an upgrade drains, the draining guest's for its own connections).
    private func takeExplicitTrims(_ southSide: SouthSide) {
        let ports = (activePort.load(ordering: .acquiring), drainPort.load(ordering: .acquiring))
        guard ports.0 != 0 || ports.1 != 0 else { return }
        let (active, drained) = watched.withLock { channels in
            (
                channels[UInt16(truncatingIfNeeded: ports.0)],
                ports.1 == 0 ? nil : channels[UInt16(truncatingIfNeeded: ports.1)]
            )
        }
        func take(from channel: Channel?, draining: Bool) {
            guard let channel else { return }
            for _ in 0..<1024 {
                guard let request = channel.popTrim() else { return }
                southSide.explicitTrim(request, fromDrainingGuest: draining)
            }
        }
        take(from: active, draining: false)
        take(from: drained, draining: true)
    }

    /// Pins the open connections to the active guest and connects the new one (relay thread).
    private func startDrain() {
        pinnedAtSwitch.store(southSide?.pinAll() ?? 0, ordering: .relaxed)
        draining.store(pinnedAtSwitch.load(ordering: .relaxed), ordering: .relaxed)
        drainPort.store(activePort.load(ordering: .acquiring), ordering: .sequentiallyConsistent)
        connect(guestPort: UInt16(drainTarget.load(ordering: .acquiring)))
        drainsHandled.store(drainRequests.load(ordering: .acquiring), ordering: .releasing)
    }

    /// Announces the service, replays the logged connections into the connected guest, then
    /// delivers what was held.
    private func startReplay(_ loop: Loop) {
        if let southSide {
            announce(southSide.service, at: southSide.splicer.serviceMAC, loop)
            let pinnedOnly = replayPinnedOnly.load(ordering: .acquiring)
            let upTo = replayUpToSerial.load(ordering: .acquiring)
            southSide.beginReplay(now: Monotonic.nanos(), sink: loop) { slot in
                (!pinnedOnly || southSide.isPinned(slot)) && slot.serial <= upTo
            }
            southSide.unpinAll()
            draining.store(0, ordering: .relaxed)
        }
        holding.store(false, ordering: .sequentiallyConsistent)
        while let entry = loop.heldFrames.first {
            let slot = entry.frame
            if let (frame, partial) = Self.split(slot),
                southSide?.fromClient(frame, partialChecksum: partial, now: Monotonic.nanos(), sink: loop) != .drop
            {
                loop.toGuest(keepingHeaderOf: slot)
            }
            loop.heldFrames.pop()
        }
    }

    /// An ARP probe for the service to the active guest, whose answer shows its data path lives
    /// (`SouthSide.probeDue`).
    private func probe(_ southSide: SouthSide, _ loop: Loop) {
        loop.toGuest { frame in
            (try? FrameBuilder.arpProbe(
                from: SouthSide.Probe.mac, for: southSide.service, to: southSide.splicer.serviceMAC, into: frame)) ?? 0
        }
    }

    /// A gratuitous ARP for the service from the relay, on the resumed guest's behalf (it has the
    /// failed one's MAC): clients and switches learn where the address lives now, without
    /// waiting for the guest's own announcement after its clock resync (tens of milliseconds).
    private func announce(_ service: IPv4Address, at mac: MACAddress, _ loop: Loop) {
        loop.toClients { frame in (try? FrameBuilder.gratuitousARP(mac: mac, ip: service, into: frame)) ?? 0 }
        announcedNanos.store(Monotonic.nanos(), ordering: .releasing)
    }

    /// Clients (the uplink, or the terminator's back) → active guest: up to a batch of tap reads
    /// (one frame or super-frame each, after its header), logged by the south-side wrapper, then
    /// one sendmmsg. A burst is bounded so one side cannot starve the other. The uplink's TLS
    /// connections go to the terminator's front instead.
    private func drainTap(_ source: TapDevice, _ loop: Loop) throws(Errno) {
        let batch = loop.fromClients
        for _ in 0..<8 {
            let now = Monotonic.nanos()
            batch.reset()
            loop.toDraining.reset()
            var more = true
            while !batch.isFull {
                guard let count = try source.read(into: batch.nextSlot) else {
                    more = false
                    break
                }
                let slot = UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[..<count])
                guard let (frame, partial) = Self.split(slot) else {
                    dropped.add(1, ordering: .relaxed)
                    continue
                }
                if let terminator, source === tap {
                    let route = terminator.route.route(fromClients: frame)
                    if route != .guest { try terminator.front.write(UnsafeRawBufferPointer(slot)) }
                    if route == .front { continue }
                }
                if holding.load(ordering: .acquiring) {
                    if loop.heldFrames.push(UnsafeRawBufferPointer(slot)) {
                        held.add(1, ordering: .relaxed)
                    } else {
                        dropped.add(1, ordering: .relaxed)
                    }
                    continue
                }
                if activePort.load(ordering: .acquiring) == 0 {
                    dropped.add(1, ordering: .relaxed)
                    continue
                }
                switch southSide?.fromClient(frame, partialChecksum: partial, now: now, sink: loop) ?? .forward {
                case .forward:
                    batch.commitSlot(length: count)
                case .forwardToDrain where drainPort.load(ordering: .acquiring) != 0:
                    loop.toDraining.nextSlot.copyMemory(from: UnsafeRawBufferPointer(slot))
                    loop.toDraining.commitSlot(length: count)
                    if loop.toDraining.isFull { try sendToDraining(loop) }
                case .drop, .fence, .forwardToDrain:
                    // (A pinned connection's bytes after the drain ended are logged: replay
                    // injects them.)
                    dropped.add(1, ordering: .relaxed)
                }
            }
            try sendToDraining(loop)
            // Read the link after the frames were logged: a switch in between sends them to
            // the new guest, never to a fenced one.
            let port = activePort.load(ordering: .acquiring)
            if port != 0, batch.count > 0 { try loop.send(batch, to: UInt16(port)) }
            if !more { return }
        }
    }

    private func sendToDraining(_ loop: Loop) throws(Errno) {
        let port = drainPort.load(ordering: .acquiring)
        if port != 0, loop.toDraining.count > 0 { try loop.send(loop.toDraining, to: UInt16(port)) }
        loop.toDraining.reset()
    }

    /// Guest link `port` → clients, for the active guest (and a draining one) only: one
    /// recvmmsg per batch; any other guest's frames are read and dropped.
    private func drainGuest(_ port: UInt16, _ socket: PacketSocket, _ loop: Loop) throws(Errno) {
        let batch = loop.fromGuests
        for _ in 0..<8 {
            let received = try socket.receive(into: batch)
            let now = Monotonic.nanos()
            for index in 0..<received {
                let slot = batch.frame(index)
                guard let fromDraining = isDraining(port), let (frame, partial) = Self.split(slot) else {
                    dropped.add(1, ordering: .relaxed)
                    continue
                }
                switch southSide?.fromGuest(
                    frame, partialChecksum: partial, now: now, sink: loop, fromDrainingGuest: fromDraining) ?? .forward
                {
                case .forward, .forwardToDrain:
                    try forwardToClients(slot, at: now)
                case .drop:
                    continue
                case .fence:
                    fenced.add(1, ordering: .relaxed)
                    let tag = closeFenceTag(port: port)?.tag ?? 0
                    guard loop.fencedCloses.push(UnsafeRawBufferPointer(slot), port: port, tag: tag, time: now) else {
                        dropped.add(1, ordering: .relaxed)  // the guest sends it again
                        continue
                    }
                    // Data that came with a FIN need not wait: it goes on now without the FIN
                    // (the held copy brings the FIN later; the client drops the repeated bytes).
                    if southSide?.withoutFIN(frame, partialChecksum: partial) == true,
                        southSide?.fromGuest(
                            frame, partialChecksum: partial, now: now, sink: loop, releasing: true,
                            fromDrainingGuest: fromDraining) != .drop
                    {
                        try forwardToClients(slot, at: now)
                    }
                }
            }
            if received < batch.capacity { return }
        }
    }

    /// For a guest connected to the uplink: whether it is the one an upgrade drains (false: the
    /// active one). nil for any other guest.
    private func isDraining(_ port: UInt16) -> Bool? {
        if UInt32(port) == activePort.load(ordering: .acquiring) { return false }
        if UInt32(port) == drainPort.load(ordering: .acquiring) { return true }
        return nil
    }

    /// The terminator's front → the clients, untouched: its TLS answers and ARP.
    private func drainFront(_ front: TapDevice, _ loop: Loop) throws(Errno) {
        for _ in 0..<64 {
            guard let count = try front.read(into: loop.scratch) else { return }
            try tap.write(UnsafeRawBufferPointer(rebasing: loop.scratch[..<count]))
            countToClients(bytes: count - VirtioNetHeader.size)
        }
    }

    /// Writes a header and frame (or super-frame) to the clients: the uplink, or the terminator's
    /// back when it is addressed to it (both for a broadcast).
    private func writeToClients(_ slot: UnsafeMutableRawBufferPointer) throws(Errno) {
        let route =
            if let terminator, let (frame, _) = Self.split(slot) {
                terminator.route.route(fromGuest: frame)
            } else {
                TerminatorRoute.FromGuest.clients
            }
        if route != .clients { try terminator?.back.write(UnsafeRawBufferPointer(slot)) }
        if route != .back { try tap.write(UnsafeRawBufferPointer(slot)) }
        countToClients(bytes: slot.count - VirtioNetHeader.size)
    }

    /// Writes a guest's frame to the clients, noting when the connected guest's first one went.
    private func forwardToClients(_ slot: UnsafeMutableRawBufferPointer, at now: UInt64) throws(Errno) {
        try writeToClients(slot)
        if firstFrameNanos.load(ordering: .relaxed) == 0 {
            _ = firstFrameNanos.compareExchange(expected: 0, desired: now, ordering: .releasing)
        }
    }

    /// The packet path's counters: relaxed atomic adds, one pair per batch or frame written.
    /// Bytes are the Ethernet frames' (a super-frame counts once, with all its bytes).
    private func countToGuest(_ batch: FrameBatch) {
        toGuest.add(UInt64(batch.count), ordering: .relaxed)
        bytesToGuest.add(UInt64(batch.byteCount - batch.count * VirtioNetHeader.size), ordering: .relaxed)
    }

    private func countToClients(bytes: Int) {
        toClients.add(1, ordering: .relaxed)
        bytesToClients.add(UInt64(bytes), ordering: .relaxed)
    }

    // MARK: Close fence

    /// How long a fenced close may wait for a verdict on its guest before it is let go anyway.
    static let closeFenceLimitNanos: UInt64 = 3_000_000_000

    /// The agent of the guest at `port`: its heartbeat (low 48 bits of `tag`), its services'
    /// restart count (high 16), whether they all run, and its tick. nil when no channel is
    /// watched there.
    private func closeFenceTag(port: UInt16) -> AgentMark? {
        guard let channel = watched.withLock({ $0[port] }) else { return nil }
        let services = channel.serviceSummary
        let tag = (channel.heartbeat & 0xFFFF_FFFF_FFFF) | UInt64(services.restarts & 0xFFFF) << 48
        return AgentMark(tag: tag, allRunning: services.allRunning, tickMillis: channel.tickMillis)
    }

    /// What the close fence reads of an agent (`closeFenceTag`).
    struct AgentMark: Equatable {
        var tag: UInt64
        var allRunning: Bool
        var tickMillis: UInt32
    }

    /// Whether the agent vouches for a close fenced `heldNanos` ago, when its tag was `tag`: it
    /// beat three times since, over at least three of its ticks of wall time, every service still
    /// runs and none restarted. The agent beats, then reaps its services, every tick; a process
    /// killed just before a tick may close its sockets and become reapable only after that
    /// tick's reap, so the reap that sees it is the next tick's, done only once the third beat
    /// is there (with two, a check between the second beat and its reap let a crashed service's
    /// FIN go). The wall time counts because a late agent catches up on its ticks back to back,
    /// and three beats in a burst are one look, not three. (A doomed service stops counting as
    /// running before its reap: the agent's `ProcessEnd`.)
    static func agentVouches(closedAt tag: UInt64, now current: AgentMark, heldNanos: UInt64) -> Bool {
        let beats = (current.tag & 0xFFFF_FFFF_FFFF) &- (tag & 0xFFFF_FFFF_FFFF)
        let ticks = 3 * UInt64(max(current.tickMillis, 1)) * 1_000_000
        return beats >= 3 && heldNanos >= ticks && current.allRunning && current.tag >> 48 == tag >> 48
    }

    /// Lets fenced FINs and RSTs go once the guest that sent them has proven healthy after them
    /// (`agentVouches`). Closes of a guest that is no longer connected (fenced by a takeover) are
    /// dropped.
    private func releaseCloses(_ loop: Loop) throws(Errno) {
        let now = Monotonic.nanos()
        while let entry = loop.fencedCloses.first {
            guard let fromDraining = isDraining(entry.port) else {
                suppressed.add(1, ordering: .relaxed)
                loop.fencedCloses.pop()
                continue
            }
            let held = now &- entry.time
            // (No channel to ask: nothing to wait for.)
            let healthy =
                closeFenceTag(port: entry.port).map { Self.agentVouches(closedAt: entry.tag, now: $0, heldNanos: held) }
                ?? true
            guard healthy || held > Self.closeFenceLimitNanos else { return }
            if !healthy {
                logger.debug(
                    "fenced close let go unvouched",
                    metadata: ["guest port": "\(entry.port)", "held ms": "\(held / 1_000_000)"])
            }
            let slot = entry.frame
            if let (frame, partial) = Self.split(slot),
                southSide?.fromGuest(
                    frame, partialChecksum: partial, now: now, sink: loop, releasing: true,
                    fromDrainingGuest: fromDraining) != .drop
            {
                try forwardToClients(slot, at: now)
            }
            loop.fencedCloses.pop()
        }
    }
}
