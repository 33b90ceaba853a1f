import FTVMDemoKit
import Glibc
import Synchronization

/// A small reverse proxy: `GET|POST /proxy/PATH` on its own port is forwarded as `PATH` to one
/// back end (`--proxy-to`), over kept-alive connections to it, and the answer is streamed back.
/// It makes the demo service a *relay server*: a service that is itself a client of an end
/// server, whose own connections ftvm must carry across a failover (docs/relay-servers.md).
///
/// One blocking thread per client connection (proxied traffic is a test workload, not the
/// 1000-connection path the event loop serves). What the back end receives depends only on
/// what the client sent, byte for byte: a replayed client request regenerates the same
/// back-end request, which is what lets ftvm match it to the one already sent.
final class Proxy: Sendable {
    /// The largest request body the proxy buffers (it sends the back end a Content-Length).
    static let bodyLimit = 64 << 20
    static let chunkSize = 64 * 1024

    private let listener: FileDescriptorBox
    private let backend: ProxyTarget
    /// Idle back-end connections, most recently used last.
    private let idle = Mutex<[Int32]>([])

    init(listener: FileDescriptor, backend: ProxyTarget) {
        self.listener = FileDescriptorBox(listener)
        self.backend = backend
    }

    /// Accepts client connections on a thread of its own, one thread each.
    func start() {
        // EventLoop.listen makes every listener non-blocking; this one's thread waits in accept.
        // (Left non-blocking, accept's EAGAIN made the thread spin: every demo guest burnt its
        // whole vCPU, idle or not, from 2026-12-01 to 2026-12-07.)
        _ = fcntl(listener.raw, F_SETFL, 0)
        spawn { [self] in
            while true {
                guard let raw = try? systemCall("accept", { accept(listener.raw, nil, nil) }) else {
                    usleep(10_000)  // out of descriptors or memory: wait, do not spin
                    continue
                }
                // A proxied connection blocks too.
                _ = fcntl(raw, F_SETFL, 0)
                setNoDelay(raw)
                spawn { [self] in serve(client: raw) }
            }
        }
    }

    /// Serves one client connection's requests in order until it closes or one fails.
    private func serve(client: Int32) {
        defer { close(client) }
        var parser = HTTPRequestParser()
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        while true {
            // Parse what is buffered (an `.end` may come with nothing left); read more when the
            // parser needs it.
            var offset = 0
            var ended = false
            parsing: while !ended {
                let parsed = pending.withUnsafeBytes { bytes in
                    Result { try parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...])) }
                }
                guard case .success(let result) = parsed else {
                    send(
                        client, Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
                    )
                    return
                }
                let start = offset
                offset += result.consumed
                switch result.event {
                case .head(let requestHead):
                    head = requestHead
                    body = []
                    if requestHead.expectsContinue { send(client, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }
                case .body(let range):
                    body.append(contentsOf: pending[(start + range.lowerBound)..<(start + range.upperBound)])
                    guard body.count <= Self.bodyLimit else { return }
                case .end:
                    ended = true
                case nil:
                    break parsing
                }
            }
            pending.removeFirst(offset)
            if ended, let request = head {
                head = nil
                guard forward(request, body: body, to: client), request.keepAlive else { return }
                continue
            }
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return }
            pending.append(contentsOf: buffer[0..<count])
        }
    }

    /// Sends one request to the back end and streams its answer to the client. Returns false
    /// when the client connection cannot go on.
    private func forward(_ request: HTTPRequestHead, body: [UInt8], to client: Int32) -> Bool {
        guard request.target.hasPrefix("/proxy/"), request.method == "GET" || request.method == "POST" else {
            return send(client, Array("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".utf8))
        }
        var outgoing = "\(request.method) \(request.target.dropFirst("/proxy".count)) HTTP/1.1\r\n"
        outgoing += "Host: \(backend.address.map(String.init).joined(separator: ".")):\(backend.port)\r\n"
        if request.method == "POST" { outgoing += "Content-Length: \(body.count)\r\n" }
        outgoing += "\r\n"
        let message = Array(outgoing.utf8) + body
        // A kept-alive connection the back end closed meanwhile fails before any answer: once
        // on a fresh one then (nothing reached the back end on the stale one).
        for attempt in 0..<2 {
            let reused = attempt == 0 ? idle.withLock { $0.popLast() } : nil
            guard let server = reused ?? connectBackend() else { break }
            switch relay(message, through: server, to: client) {
            case .done(let keepAlive):
                if keepAlive { idle.withLock { $0.append(server) } } else { close(server) }
                return true
            case .clientGone:
                close(server)
                return false
            case .noAnswer where reused != nil:
                close(server)
                continue
            case .noAnswer, .broken:
                close(server)
                return false
            }
        }
        return send(client, Array("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            && false
    }

    private enum Outcome {
        /// The whole answer went to the client; whether the back-end connection may be reused.
        case done(keepAlive: Bool)
        case clientGone
        /// The back end closed (or failed) before the first byte of an answer.
        case noAnswer
        /// It failed in the middle of one (the client has part of it: the connection must end).
        case broken
    }

    /// One exchange with the back end: the request out, the head (which must carry a
    /// Content-Length) and that many body bytes back, passed on as they arrive.
    private func relay(_ message: [UInt8], through server: Int32, to client: Int32) -> Outcome {
        guard send(server, message) else { return .noAnswer }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        var headEnd: Int?
        while headEnd == nil {
            let count = buffer.withUnsafeMutableBytes { recv(server, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return received.isEmpty ? .noAnswer : .broken }
            received.append(contentsOf: buffer[0..<count])
            headEnd = Self.endOfHead(received)
            if headEnd == nil, received.count > 65536 { return .broken }
        }
        guard let headEnd, let length = Self.contentLength(received[..<headEnd]) else { return .broken }
        let headText = String(decoding: received[..<headEnd], as: UTF8.self).lowercased()
        let keepAlive = !headText.contains("connection: close")
        var remaining = length - min(length, received.count - headEnd)
        guard send(client, Array(received[..<(headEnd + min(length, received.count - headEnd))])) else {
            return .clientGone
        }
        while remaining > 0 {
            let count = buffer.withUnsafeMutableBytes {
                recv(server, $0.baseAddress, min($0.count, remaining), 0)
            }
            guard count > 0 else { return .broken }
            remaining -= count
            guard send(client, Array(buffer[0..<count])) else { return .clientGone }
        }
        return .done(keepAlive: keepAlive)
    }

    private func connectBackend() -> Int32? {
        guard
            let raw = try? systemCall(
                "socket", { socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0) })
        else { return nil }
        var peer = sockaddr_in()
        peer.sin_family = sa_family_t(AF_INET)
        peer.sin_port = backend.port.bigEndian
        withUnsafeMutableBytes(of: &peer.sin_addr) { $0.copyBytes(from: backend.address.prefix(4)) }
        let connected = withUnsafePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(raw, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            log("proxy: cannot connect to the back end: \(String(cString: strerror(errno)))")
            close(raw)
            return nil
        }
        setNoDelay(raw)
        return raw
    }

    /// The offset just past the head's empty line, if it is all there.
    static func endOfHead(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 3..<bytes.count
        where bytes[index - 3] == 13 && bytes[index - 2] == 10 && bytes[index - 1] == 13 && bytes[index] == 10 {
            return index + 1
        }
        return nil
    }

    static func contentLength(_ head: ArraySlice<UInt8>) -> Int? {
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                return Int(parts[1].trimmingCharacters(in: " \t"))
            }
        }
        return nil
    }
}

/// Writes all of `bytes` (blocking); false when the peer is gone.
@discardableResult
private func send(_ socket: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in
        var sent = 0
        while sent < raw.count {
            guard
                let count = try? systemCall(
                    "send",
                    {
                        Glibc.send(socket, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                    })
            else { return false }
            sent += count
        }
        return true
    }
}

private func setNoDelay(_ socket: Int32) {
    var on: Int32 = 1
    _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
}

/// A listening descriptor shared by the accept thread (it lives as long as the process).
private final class FileDescriptorBox: @unchecked Sendable {
    let descriptor: FileDescriptor
    var raw: Int32 { descriptor.raw }
    init(_ descriptor: FileDescriptor) { self.descriptor = descriptor }
}

/// Runs `body` on a detached POSIX thread (no Foundation in the guest).
private func spawn(_ body: @escaping @Sendable () -> Void) {
    final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    let context = Unmanaged.passRetained(Body(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, context)
    if created == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Body>.fromOpaque(context).release()
        log("proxy: cannot start a thread: \(String(cString: strerror(created)))")
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}
