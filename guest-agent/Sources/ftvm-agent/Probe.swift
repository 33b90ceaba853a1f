import Glibc

/// A non-blocking liveness probe of one TCP service: connect to 127.0.0.1:port, send a minimal
/// HTTP request, and count any answer as alive. It never blocks the agent's tick (the heartbeat
/// must keep beating while a service is stuck); each `step` does only what is ready.
///
/// A stopped process still has its listening socket, and the kernel still completes handshakes
/// into its backlog, so "connect succeeded" proves nothing: only an answer does.
struct Probe {
    static let intervalMillis = 500
    static let deadlineMillis = 1000
    /// Consecutive failed probes before the service is reported hung.
    static let failuresToReport = 2

    enum Outcome { case pending, alive, failed }

    private var fd: Int32 = -1
    private var startedAt = 0
    private var sent = false
    private(set) var nextAt = 0
    private(set) var consecutiveFailures = 0

    var inFlight: Bool { fd >= 0 }

    /// No probe before `time` (a restarted service is checked for its listener first).
    mutating func postpone(until time: Int) { nextAt = time }

    mutating func start(port: UInt16, now: Int) {
        fd = socket(
            AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        startedAt = now
        sent = false
        guard fd >= 0 else { return }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 && errno != EINPROGRESS { _ = finish(alive: false, now: now) }
    }

    /// Advances the probe; returns its outcome once decided.
    mutating func step(now: Int) -> Outcome {
        guard fd >= 0 else { return consecutiveFailures > 0 ? .failed : .pending }
        var entry = pollfd(fd: fd, events: Int16(sent ? POLLIN : POLLOUT), revents: 0)
        if poll(&entry, 1, 0) > 0 {
            if entry.revents & Int16(POLLERR | POLLHUP) != 0 && entry.revents & Int16(POLLIN) == 0 {
                return finish(alive: false, now: now)
            }
            if !sent {
                let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
                sent = send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count
                if !sent { return finish(alive: false, now: now) }
            } else {
                var byte: UInt8 = 0
                return finish(alive: recv(fd, &byte, 1, 0) > 0, now: now)
            }
        }
        return now - startedAt > Self.deadlineMillis ? finish(alive: false, now: now) : .pending
    }

    private mutating func finish(alive: Bool, now: Int) -> Outcome {
        if fd >= 0 { close(fd) }
        fd = -1
        nextAt = now + Self.intervalMillis
        consecutiveFailures = alive ? 0 : consecutiveFailures + 1
        return alive ? .alive : .failed
    }
}
