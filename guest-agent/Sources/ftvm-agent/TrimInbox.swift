import FTVMChannel
import FTVMSystem
import Glibc
import SystemPackage

/// The agent's end of the explicit trim API (docs/trim-api.md): a non-blocking Unix datagram
/// socket at `TrimRequest.socketPath` that any local service may send `TrimRequest` datagrams
/// to, drained once per tick into the channel's trim ring.
///
/// The tick is the heartbeat's, so `drain` is bounded: at most `perTick` datagrams, one
/// recv(2) each into one preallocated buffer, no allocation, no blocking. What does not fit
/// waits in the socket's queue for the next tick, or is refused to the sender when that queue is
/// full (the sender counts it). Malformed datagrams and pushes the full ring refused are counted
/// and reported on the console at most once per `reportIntervalMillis`.
final class TrimInbox {
    static let perTick = 256
    static let reportIntervalMillis = 10_000
    static let retryIntervalMillis = 5_000
    /// Datagrams the kernel queues per Unix datagram socket before senders get EAGAIN. The
    /// default (10) is less than one busy tick's worth; the value applies to sockets created after
    /// it is set, so it is raised before binding.
    static let queueLength = 1024
    static let queueLengthKnob = "/proc/sys/net/unix/max_dgram_qlen"

    private let channel: Channel
    private let path: String
    /// The socket's directory, /run/ftvm; created if missing.
    private let directory: String
    private var fd: Int32 = -1
    private var retryAt = 0
    private var lastComplaint = ""
    /// One more byte than the longest valid datagram, so a longer one is seen as too long.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(
        byteCount: TrimRequest.maximumDatagramLength + 1, alignment: 8)

    private var pushed: UInt64 = 0
    private var malformed: UInt64 = 0
    private var dropped: UInt64 = 0
    private var reported = (malformed: UInt64(0), dropped: UInt64(0))
    private var nextReportAt = 0

    init(channel: Channel, path: String = TrimRequest.socketPath) {
        self.channel = channel
        self.path = path
        let parent = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(path[..<$0]) } ?? "."
        directory = parent.isEmpty ? "/" : parent
    }

    deinit {
        if fd >= 0 { close(fd) }
        buffer.deallocate()
    }

    /// One tick's work: (re)open the socket if needed, move waiting datagrams into the ring.
    func drain(nowMillis now: Int) {
        if fd < 0 {
            guard now >= retryAt else { return }
            open(nowMillis: now)
            guard fd >= 0 else { return }
        }
        for _ in 0..<Self.perTick {
            let count = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC))
            if count < 0 {
                // EAGAIN: empty. EINTR: try next tick. Nothing else is expected of a bound socket.
                break
            }
            guard count <= TrimRequest.maximumDatagramLength,
                let request = TrimRequest(datagram: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            else {
                malformed &+= 1
                continue
            }
            if channel.pushTrim(request) {
                pushed &+= 1
            } else {
                dropped &+= 1
            }
        }
        report(nowMillis: now)
    }

    /// Says what went wrong since the last report, if anything, at most once per interval.
    private func report(nowMillis now: Int) {
        guard now >= nextReportAt, malformed != reported.malformed || dropped != reported.dropped else { return }
        Console.say(
            "trim requests lost since the last report: \(malformed - reported.malformed) malformed, "
                + "\(dropped - reported.dropped) refused by the full ring (totals: \(pushed) pushed, \(malformed) malformed, "
                + "\(dropped) refused; reported at most every \(Self.reportIntervalMillis / 1000) s)")
        reported = (malformed, dropped)
        nextReportAt = now + Self.reportIntervalMillis
    }

    /// Creates the directory (0755) and binds the socket (0666: services run as any user).
    private func open(nowMillis now: Int) {
        do throws(Errno) {
            raiseQueueLength()
            if mkdir(directory, 0o755) == 0 {
                // Past the umask: services running as any user must reach the socket.
                try Syscall.retrying { chmod(directory, 0o755) }
            } else if errno != EEXIST {
                throw Errno(rawValue: errno)
            }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Errno.fileNameTooLong }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            let socket = try Syscall.retrying { Glibc.socket(AF_UNIX, type, 0) }
            do throws(Errno) {
                // A previous agent's socket file (this agent restarted) would make bind fail.
                unlink(path)
                try Syscall.retrying {
                    withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                        }
                    }
                }
                // After bind, not through umask: the mode is what connect/sendto checks.
                try Syscall.retrying { chmod(path, 0o666) }
            } catch {
                close(socket)
                throw error
            }
            fd = socket
            lastComplaint = ""
            Console.say("trim socket ready at \(path)")
        } catch {
            retryAt = now + Self.retryIntervalMillis
            let complaint =
                "cannot open the trim socket \(path): \(error); services' trim requests are lost until it opens"
            if complaint != lastComplaint {
                Console.say(complaint)
                lastComplaint = complaint
            }
        }
    }

    private func raiseQueueLength() {
        guard let current = (try? SmallFile.read(Self.queueLengthKnob)).flatMap({ Int($0.trimmed) }),
            current < Self.queueLength
        else {
            return
        }
        try? SmallFile.write(Self.queueLengthKnob, "\(Self.queueLength)")
    }
}
