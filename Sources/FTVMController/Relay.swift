import FTVMSystem
import Foundation
import Glibc
import Logging
import Synchronization
import SystemPackage

/// Moves Ethernet frames between the clients' tap and the guests' QEMU socket netdevs.
///
/// Only the active guest is connected to the uplink: frames from any other guest (the backup
/// while it boots, a fenced primary) are dropped here, which is what keeps one identity on the
/// wire (invariant 3). Switching is one atomic store, so the control plane never blocks the
/// packet path and the packet path never takes a lock.
///
/// The loop runs on its own thread (a plain poll(2) loop, not Swift concurrency): it owns its
/// buffers and does not allocate per frame.
public final class Relay: Sendable {
    public struct Counters: Sendable, Codable, Equatable {
        public var framesToGuest: UInt64
        public var framesToClients: UInt64
        public var framesDropped: UInt64
    }

    public let socket: UDPSocket
    private let tap: TapDevice
    /// Logs client connections and enforces output commit; nil relays frames untouched.
    let southSide: SouthSide?
    /// The QEMU-side UDP port of the guest connected to the uplink; 0 connects nobody.
    private let activePort = Atomic<UInt32>(0)
    private let stopping = Atomic<Bool>(false)
    private let toGuest = Atomic<UInt64>(0)
    private let toClients = Atomic<UInt64>(0)
    private let dropped = Atomic<UInt64>(0)
    /// When (Monotonic nanos) the connected guest's first frame reached the clients; 0 = not yet.
    private let firstFrameNanos = Atomic<UInt64>(0)
    private let finished = Mutex<Bool>(false)
    private let logger: Logger

    init(tap: TapDevice, socket: UDPSocket, southSide: SouthSide?, logger: Logger) {
        self.tap = tap
        self.socket = socket
        self.southSide = southSide
        self.logger = logger
    }

    /// Connects the guest whose QEMU end is `port` to the uplink (nil: nobody). From the moment
    /// this returns no frame from the previous guest reaches a client.
    public func connect(guestPort port: UInt16?) {
        firstFrameNanos.store(0, ordering: .relaxed)
        activePort.store(UInt32(port ?? 0), ordering: .sequentiallyConsistent)
    }

    /// Waits until the connected guest's first frame has gone to the clients; returns when that
    /// happened (Monotonic nanos), or nil after `timeoutMillis`.
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
        Counters(
            framesToGuest: toGuest.load(ordering: .relaxed), framesToClients: toClients.load(ordering: .relaxed),
            framesDropped: dropped.load(ordering: .relaxed))
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "ftvm-relay"
        thread.start()
    }

    /// Asks the loop to end and waits (at most about one poll period) until it has.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        for _ in 0..<50 where !finished.withLock({ $0 }) { usleep(10_000) }
    }

    private func run() {
        // Two fixed batches, one per direction, reused for the life of the loop.
        let fromClients = FrameBatch()
        let fromGuests = FrameBatch()
        defer { finished.withLock { $0 = true } }
        var fds = [pollfd(fd: tap.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)]
        while !stopping.load(ordering: .acquiring) {
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, 2, 100) }
            if ready <= 0 { continue }
            do {
                if fds[0].revents != 0 { try drainTap(fromClients) }
                if fds[1].revents != 0 { try drainGuests(fromGuests) }
            } catch {
                logger.error("relay I/O failed", metadata: ["error": "\(error)"])
                usleep(10_000)
            }
        }
    }

    /// Clients → active guest: up to a batch of tap reads (one frame each), logged by the
    /// south-side wrapper, then one sendmmsg. A burst is bounded so one side cannot starve the
    /// other.
    private func drainTap(_ batch: FrameBatch) throws(Errno) {
        for _ in 0..<8 {
            batch.reset()
            var more = true
            while !batch.isFull {
                guard let count = try tap.read(into: batch.nextSlot) else {
                    more = false
                    break
                }
                let frame = UnsafeMutableRawBufferPointer(rebasing: batch.nextSlot[..<count])
                if activePort.load(ordering: .acquiring) == 0 || southSide?.fromClient(frame) == .drop {
                    dropped.add(1, ordering: .relaxed)
                    continue
                }
                batch.commitSlot(length: count)
            }
            // Read the port after the frames were logged: a switch in between sends them to
            // the new guest, never to a fenced one.
            let port = activePort.load(ordering: .acquiring)
            if port != 0, batch.count > 0 {
                try socket.send(batch, toPort: UInt16(port))
                toGuest.add(UInt64(batch.count), ordering: .relaxed)
            }
            if !more { return }
        }
    }

    /// Guests → clients, for the active guest only: one recvmmsg per batch.
    private func drainGuests(_ batch: FrameBatch) throws(Errno) {
        for _ in 0..<8 {
            let received = try socket.receive(into: batch)
            for index in 0..<received {
                guard UInt32(batch.sourcePort(index)) == activePort.load(ordering: .acquiring) else {
                    dropped.add(1, ordering: .relaxed)
                    continue
                }
                let frame = batch.frame(index)
                southSide?.fromGuest(frame)
                try tap.write(UnsafeRawBufferPointer(frame))
                toClients.add(1, ordering: .relaxed)
                if firstFrameNanos.load(ordering: .relaxed) == 0 {
                    _ = firstFrameNanos.compareExchange(expected: 0, desired: Monotonic.nanos(), ordering: .releasing)
                }
            }
            if received < batch.capacity { return }
        }
    }
}
