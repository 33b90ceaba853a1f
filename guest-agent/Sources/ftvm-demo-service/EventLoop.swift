import FTVMDemoKit
import FTVMTrim
import Glibc

/// What the event loop needs of a protocol: bytes in, bytes out, no sockets. `DemoSession`
/// (HTTP) and `CommandSession` (the line protocol) both fit.
protocol ServiceSession {
    var hasOutput: Bool { get }
    var acceptsInput: Bool { get }
    var isClosing: Bool { get }
    mutating func receive(_ input: UnsafeRawBufferPointer) -> Int
    func peekOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int
    /// Commits what the socket took; returns the exchange boundary it completed, if the
    /// protocol reports boundaries itself (HTTP does not: the relay finds its own).
    mutating func commitOutput(_ count: Int) -> CommandSession.Boundary?
}

extension DemoSession: ServiceSession {
    mutating func commitOutput(_ count: Int) -> CommandSession.Boundary? {
        advanceOutput(by: count)
        return nil
    }
}

extension CommandSession: ServiceSession {
    mutating func commitOutput(_ count: Int) -> CommandSession.Boundary? {
        advanceOutput(by: count)
    }
}

/// A listening socket and what its connections speak.
struct Listener {
    enum Kind { case http, command }

    let socket: FileDescriptor
    let port: UInt16
    let kind: Kind
}

/// One client connection: its socket, its protocol state, and input it could not take yet.
final class Connection {
    let socket: FileDescriptor
    var session: any ServiceSession
    /// Bytes read but refused by the session while a response was pending (pipelining).
    /// At most one read's worth: nothing more is read until this is empty.
    var inbox: [UInt8] = []
    var peerClosed = false
    /// Set once the final response is sent and our side is shut down: we then read and drop
    /// input until the client closes or this (monotonic ms) deadline passes.
    var lingerDeadline: Int64?
    var interest = Int16(POLLIN)
    /// Work is left over after this connection's turn: poll without waiting.
    var busy = false
    /// The connection as ftvm names it in a trim request (command connections only): the
    /// client's address and port, and the service's port; offsets come from the session.
    let trimIdentity: TrimRequest?

    init(socket: FileDescriptor, session: any ServiceSession, trimIdentity: TrimRequest?) {
        self.socket = socket
        self.session = session
        self.trimIdentity = trimIdentity
    }
}

/// The whole service on one thread: a poll(2) loop over the listeners (HTTP, and the command
/// port when asked for) and every connection.
///
/// A thread per connection would not fit 1000 clients in a 256 MiB, 1-vCPU guest. Here a
/// connection costs its session (`DemoSession` or `CommandSession`) plus at most one read of
/// unconsumed input; response bodies are generated into the one shared `chunk` at send time,
/// and only what the socket accepted is committed, so a slow reader costs no buffer at all.
final class EventLoop {
    static let chunkSize = 64 * 1024
    /// Chunks moved per connection per turn, so one fast client cannot starve the rest.
    static let roundsPerTurn = 4
    static let lingerMilliseconds: Int64 = 2000

    private let listeners: [Listener]
    private let router: DemoRouter
    private let readVersion: () -> [UInt8]?
    /// Sends the command connections' trim requests; nil when there is no command listener.
    private let trims: TrimNotifier?
    private var connections: [Int32: Connection] = [:]
    /// Set when accept hits the descriptor limit; cleared when a connection closes.
    private var acceptPaused = false
    private let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)

    init(listeners: [Listener], router: DemoRouter, readVersion: @escaping () -> [UInt8]?, trims: TrimNotifier?) {
        self.listeners = listeners
        self.router = router
        self.readVersion = readVersion
        self.trims = trims
    }

    deinit {
        chunk.deallocate()
    }

    func run() throws(SystemError) -> Never {
        var polled: [pollfd] = []
        while true {
            polled.removeAll(keepingCapacity: true)
            if !acceptPaused {
                for listener in listeners {
                    polled.append(pollfd(fd: listener.socket.raw, events: Int16(POLLIN), revents: 0))
                }
            }
            var timeout: Int64 = -1
            let now = monotonicMilliseconds()
            for (fd, connection) in connections {
                polled.append(pollfd(fd: fd, events: connection.interest, revents: 0))
                if connection.busy {
                    timeout = 0
                } else if let deadline = connection.lingerDeadline {
                    let wait = max(0, deadline - now)
                    timeout = timeout < 0 ? wait : min(timeout, wait)
                }
            }
            let pollTimeout = Int32(min(timeout, Int64(Int32.max)))
            _ = try systemCall("poll") { poll(&polled, nfds_t(polled.count), pollTimeout) }

            let after = monotonicMilliseconds()
            for entry in polled {
                if let listener = listeners.first(where: { $0.socket.raw == entry.fd }) {
                    if entry.revents != 0 { acceptConnections(on: listener) }
                    continue
                }
                guard let connection = connections[entry.fd] else { continue }
                let expired = connection.lingerDeadline.map { $0 <= after } ?? false
                guard entry.revents != 0 || connection.busy || expired else { continue }
                if !serve(connection) {
                    connections[entry.fd] = nil
                    acceptPaused = false
                }
            }
        }
    }

    private func acceptConnections(on listener: Listener) {
        for _ in 0..<64 {
            do throws(SystemError) {
                // accept4 is hidden behind _GNU_SOURCE in the Glibc module; accepted sockets do
                // not inherit O_NONBLOCK on Linux, so set it. This process never execs, so no
                // FD_CLOEXEC.
                var peer = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let raw = try systemCall("accept") {
                    withUnsafeMutablePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            accept(listener.socket.raw, $0, &length)
                        }
                    }
                }
                let socket = FileDescriptor(raw)
                _ = try systemCall("fcntl(O_NONBLOCK)") { fcntl(raw, F_SETFL, O_NONBLOCK) }
                // Output leaves in whole chunks, so Nagle only ever delays a response's tail.
                var on: Int32 = 1
                _ = setsockopt(raw, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
                switch listener.kind {
                case .http:
                    connections[raw] = Connection(
                        socket: socket, session: DemoSession(router: router), trimIdentity: nil)
                case .command:
                    let identity = TrimRequest(
                        clientAddress: UInt32(bigEndian: peer.sin_addr.s_addr),
                        clientPort: UInt16(bigEndian: peer.sin_port),
                        serverPort: listener.port, clientOffset: 0, serverOffset: 0)
                    connections[raw] = Connection(
                        socket: socket, session: CommandSession(readVersion: readVersion), trimIdentity: identity)
                }
            } catch {
                switch error.code {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory: stop polling the listeners (they would stay
                    // readable and spin) until a connection closes; the backlog holds the rest.
                    acceptPaused = true
                    return
                case ECONNABORTED, EPROTO, EPERM:
                    continue
                default:
                    return  // EAGAIN: backlog empty.
                }
            }
        }
    }

    /// Gives one connection its turn; `false` means close it.
    private func serve(_ connection: Connection) -> Bool {
        connection.busy = false
        if connection.lingerDeadline != nil { return linger(connection) }
        for _ in 0..<Self.roundsPerTurn {
            if connection.session.hasOutput {
                switch sendChunk(connection) {
                case .failed: return false
                case .blocked:
                    connection.interest = Int16(POLLOUT)
                    return true
                case .sent: continue
                }
            }
            if connection.session.isClosing {
                // Half-close and drain before close(2): closing with unread input makes the
                // kernel send RST, which can destroy the response before the client reads it.
                _ = shutdown(connection.socket.raw, Int32(SHUT_WR))
                connection.inbox = []
                guard !connection.peerClosed else { return false }
                connection.lingerDeadline = monotonicMilliseconds() + Self.lingerMilliseconds
                connection.interest = Int16(POLLIN)
                return true
            }
            if !connection.inbox.isEmpty {
                let used = connection.inbox.withUnsafeBytes { connection.session.receive($0) }
                // A session with nothing to send that refuses input would never progress.
                guard used > 0 || !connection.session.acceptsInput else { return false }
                connection.inbox.removeFirst(used)
                continue
            }
            if connection.peerClosed { return false }
            switch receiveChunk(connection) {
            case .failed: return false
            case .blocked:
                connection.interest = Int16(POLLIN)
                return true
            case .closed:
                connection.peerClosed = true
            case .received(let count):
                let used = connection.session.receive(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
                if used < count { connection.inbox.append(contentsOf: chunk[used..<count]) }
            }
        }
        connection.busy = true
        connection.interest = Int16(POLLIN | POLLOUT)
        return true
    }

    private enum SendResult { case sent, blocked, failed }

    /// Generates up to one chunk of output and sends it; commits only what the kernel took.
    /// When that completes a command reply, tells ftvm the connection may be trimmed there:
    /// only now is the whole reply in the socket, so only now is a new connection at that
    /// point equivalent (docs/trim-api.md).
    private func sendChunk(_ connection: Connection) -> SendResult {
        let count = connection.session.peekOutput(into: chunk)
        var sent = 0
        var result = SendResult.sent
        while sent < count {
            do {
                sent += try systemCall("send") {
                    send(connection.socket.raw, chunk.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL))
                }
            } catch {
                // EPIPE / ECONNRESET: the client vanished.
                result = error.isWouldBlock ? .blocked : .failed
                break
            }
        }
        if let boundary = connection.session.commitOutput(sent), let trims, var request = connection.trimIdentity {
            request.clientOffset = boundary.clientOffset
            request.serverOffset = boundary.serverOffset
            trims.notify(request)
        }
        return result
    }

    private enum ReceiveResult {
        case received(Int)
        case closed
        case blocked
        case failed
    }

    private func receiveChunk(_ connection: Connection) -> ReceiveResult {
        do {
            let count = try systemCall("recv") { recv(connection.socket.raw, chunk.baseAddress!, chunk.count, 0) }
            return count == 0 ? .closed : .received(count)
        } catch {
            return error.isWouldBlock ? .blocked : .failed
        }
    }

    /// Drops input after the final response until the client closes or the deadline passes.
    private func linger(_ connection: Connection) -> Bool {
        guard let deadline = connection.lingerDeadline, monotonicMilliseconds() < deadline else { return false }
        for _ in 0..<Self.roundsPerTurn {
            switch receiveChunk(connection) {
            case .received: continue
            case .blocked: return true
            case .closed, .failed: return false
            }
        }
        connection.busy = true
        return true
    }
}

extension EventLoop {
    /// Creates the non-blocking listening socket; returns it with the port actually bound
    /// (which differs from `port` only when `port` is 0).
    static func listen(address: [UInt8], port: UInt16) throws(SystemError) -> (FileDescriptor, UInt16) {
        let type = Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
        let socket = FileDescriptor(try systemCall("socket") { Glibc.socket(AF_INET, type, 0) })
        var on: Int32 = 1
        _ = try systemCall("setsockopt(SO_REUSEADDR)") {
            setsockopt(socket.raw, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &local.sin_addr) { $0.copyBytes(from: address.prefix(4)) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = try systemCall("bind") {
            withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket.raw, $0, length) }
            }
        }
        _ = try systemCall("listen") { Glibc.listen(socket.raw, 4096) }
        _ = try systemCall("getsockname") {
            withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket.raw, $0, &length) }
            }
        }
        return (socket, UInt16(bigEndian: local.sin_port))
    }
}
