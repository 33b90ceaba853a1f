// Re-exported: a service that imports FTVMTrim builds `TrimRequest`s without naming the channel.
@_exported import FTVMChannel
import Glibc
import Synchronization

/// Tells ftvm that a connection may be trimmed: sends `TrimRequest.datagram` to the guest
/// agent's socket (`TrimRequest.socketPath`), which passes it to the host through the channel.
/// See docs/trim-api.md for what the offsets mean and when a call is safe.
///
/// Trimming only shortens a future replay, so this never blocks and never fails its caller:
/// the socket is non-blocking and each send is one `sendto(MSG_DONTWAIT)`. When the agent is
/// not there (no socket, or nobody bound to it), or its queue is full, the request is counted
/// in `undelivered` and forgotten; a later request for the same connection supersedes it anyway.
///
/// One datagram socket, opened at init and closed at deinit; safe to share between threads
/// (`sendto` on one socket is, and the counters are atomics). No Foundation: guest binaries
/// are linked with `--static-swift-stdlib` alone.
public final class TrimNotifier: Sendable {
    /// The socket, or -1 when it could not be created (every request is then undelivered).
    private let fd: Int32
    private let address: sockaddr_un
    /// Whether `path` fits in `sun_path`; a longer one is never delivered.
    private let addressValid: Bool
    private let deliveredCount = Atomic<UInt64>(0)
    private let undeliveredCount = Atomic<UInt64>(0)
    private let lastErrnoValue = Atomic<Int32>(0)

    /// Opens the socket. `path` is the agent's socket; tests point it elsewhere.
    public init(path: String = TrimRequest.socketPath) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        addressValid = !bytes.isEmpty && bytes.count < MemoryLayout.size(ofValue: address.sun_path)
        if addressValid {
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        }
        self.address = address
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        fd = addressValid ? socket(AF_UNIX, type, 0) : -1
        if fd < 0 { lastErrnoValue.store(addressValid ? errno : ENAMETOOLONG, ordering: .relaxed) }
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Sends `request`; true when the kernel queued it for the agent. Call it only after the
    /// reply's last byte was written to the connection (docs/trim-api.md). Never blocks.
    @discardableResult
    public func notify(_ request: TrimRequest) -> Bool {
        guard fd >= 0 else {
            undeliveredCount.add(1, ordering: .relaxed)
            return false
        }
        let datagram = request.datagram
        var address = self.address
        let sent = datagram.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                    while true {
                        let result = sendto(
                            fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), target,
                            socklen_t(MemoryLayout<sockaddr_un>.size))
                        if result < 0 && errno == EINTR { continue }
                        return result < 0 ? -Int(errno) : result
                    }
                }
            }
        }
        guard sent == datagram.count else {
            // ENOENT / ECONNREFUSED: no agent; EAGAIN: its queue is full. Either way, forget it.
            lastErrnoValue.store(sent < 0 ? Int32(-sent) : EMSGSIZE, ordering: .relaxed)
            undeliveredCount.add(1, ordering: .relaxed)
            return false
        }
        deliveredCount.add(1, ordering: .relaxed)
        return true
    }

    /// Requests the kernel queued for the agent.
    public var delivered: UInt64 { deliveredCount.load(ordering: .relaxed) }

    /// Requests dropped because the agent (or its socket) was absent or its queue was full.
    public var undelivered: UInt64 { undeliveredCount.load(ordering: .relaxed) }

    /// The errno of the last undelivered request (0 if none): ENOENT or ECONNREFUSED when the
    /// agent is absent, EAGAIN when it is behind. For a service's own diagnostics.
    public var lastErrno: Int32 { lastErrnoValue.load(ordering: .relaxed) }
}
