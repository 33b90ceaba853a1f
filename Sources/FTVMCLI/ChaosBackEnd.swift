import FTVMSystem
import Foundation
import Glibc
import SeededRandom
import Synchronization

/// `ftvm chaos --backend`: the end server the pair's proxy sends its requests to, listening in
/// the clients' namespace, counting each request it is asked. It answers `GET …/bytes/N?seed=S`
/// with `ProxiedBytes` N bytes from seed S (Content-Length, no date or server header, so an
/// answer is the same every time it is asked), keeps a connection alive unless the request says
/// `Connection: close` or is HTTP/1.0, and answers anything else 404. Each proxied request of a
/// campaign has a seed of its own, so the count per seed says whether the request reached the
/// back end once, twice (a replay let the new guest's proxy send it again), or never (the client
/// was answered from the log).
final class CountingBackEnd: Sendable {
    let endpoint: IPv4Endpoint
    private let listener: TCPListener
    private let asked = Mutex<[UInt64: Int]>([:])

    /// Listens at `endpoint` in network namespace `namespace` (here when nil).
    init(_ endpoint: IPv4Endpoint, namespace: String?) throws {
        do {
            listener = try TCPListener(endpoint, namespacePath: namespace.map { "/run/netns/\($0)" })
        } catch {
            throw CommandFailure(
                "cannot serve the back end at \(endpoint) in namespace \(namespace ?? "(this one)") (\(error)): give --backend an address of that namespace, where the pair's proxy sends its requests, on a port nothing else listens on"
            )
        }
        self.endpoint = listener.address
    }

    func start() {
        Thread { [self] in
            while let connection = try? listener.accept() {
                Thread { self.serve(connection) }.start()
            }
        }.start()
    }

    /// How many times the request for `seed` reached the back end.
    func timesAsked(seed: UInt64) -> Int { asked.withLock { $0[seed] ?? 0 } }

    func stop() { listener.shutdown() }

    private func serve(_ connection: StreamSocket) {
        connection.setTimeout(seconds: 120)
        // The FIN goes now, not whenever the thread's closure lets the socket go.
        defer { _ = shutdown(connection.fd, Int32(SHUT_RDWR)) }
        while let request = try? Self.readHead(connection) {
            guard let target = request.target, let (length, seed) = ProxiedBytes.parse(target) else {
                try? connection.write(Array("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".utf8))
                if request.close { return } else { continue }
            }
            asked.withLock { $0[seed, default: 0] += 1 }
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(length)\r\n\r\n"
            do {
                try connection.write(Array(head.utf8))
                var bytes = ProxiedBytes(seed: seed)
                var left = length
                while left > 0 {
                    let chunk = bytes.next(min(left, 1 << 16))
                    try connection.write(chunk)
                    left -= chunk.count
                }
            } catch {
                return
            }
            if request.close { return }
        }
    }

    /// A request head: its target (nil when the request line is not `GET TARGET HTTP/1.x`) and
    /// whether the connection ends after its answer.
    struct Head: Equatable {
        var target: String?
        var close: Bool
    }

    /// Reads one request head; nil at the end of the stream.
    static func readHead(_ connection: StreamSocket) throws -> Head? {
        guard let first = try connection.readLine(limit: 8192) else { return nil }
        var lines = [String(decoding: first, as: UTF8.self)]
        while let line = try connection.readLine(limit: 8192) {
            let text = String(decoding: line, as: UTF8.self)
            if text == "\r" || text.isEmpty { break }
            lines.append(text)
            guard lines.count < 200 else { throw CommandFailure("a request head of over 200 lines") }
        }
        return parseHead(lines)
    }

    /// The head of `lines` (the request line, then the header lines, each without its LF).
    static func parseHead(_ lines: [String]) -> Head {
        let request = lines.first?.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ") ?? []
        let isGET = request.count == 3 && request[0] == "GET" && request[2].hasPrefix("HTTP/1.")
        var close = !isGET || request[2] == "HTTP/1.0"
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "connection" else { continue }
            let tokens = parts[1].lowercased().split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if tokens.contains("close") { close = true }
            if tokens.contains("keep-alive") && request.count == 3 && request[2] == "HTTP/1.0" { close = false }
        }
        return Head(target: isGET ? String(request[1]) : nil, close: close)
    }
}

/// The bytes the counting back end answers for a seed: SplitMix64's outputs, little-endian.
struct ProxiedBytes {
    private var random: SplitMix64
    private var pending: [UInt8] = []

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    /// The next `count` bytes.
    mutating func next(_ count: Int) -> [UInt8] {
        var bytes = pending
        bytes.reserveCapacity(count + 8)
        while bytes.count < count {
            withUnsafeBytes(of: random.next().littleEndian) { bytes.append(contentsOf: $0) }
        }
        pending = Array(bytes[count...])
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    /// `(N, S)` of a target ending in `/bytes/N?seed=S` (N at most 1 GiB).
    static func parse(_ target: String) -> (length: Int, seed: UInt64)? {
        guard let range = target.range(of: "/bytes/", options: .backwards) else { return nil }
        let rest = target[range.upperBound...].split(separator: "?", maxSplits: 1)
        guard rest.count == 2, let length = Int(rest[0]), (0...(1 << 30)).contains(length),
            rest[1].hasPrefix("seed="), let seed = UInt64(rest[1].dropFirst("seed=".count))
        else { return nil }
        return (length, seed)
    }

    /// The resource at `url` (ending in `/bytes/N?seed=S`), its SHA-256 taken of the bytes made
    /// here, as the back end makes them.
    static func resource(_ url: String) throws -> Resource {
        guard let (length, seed) = parse(url) else { throw CommandFailure("not a /bytes/N?seed=S URL: \(url)") }
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var bytes = ProxiedBytes(seed: seed)
        var left = length
        while left > 0 {
            let chunk = bytes.next(min(left, 1 << 20))
            input.fileHandleForWriting.write(Data(chunk))
            left -= chunk.count
        }
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Resource(url: url, sha256: String(text.prefix(64)), length: length, reproducible: true)
    }
}

extension ProxiedBytes {
    /// The seed of a campaign's proxied request: one of its own for every request of every round,
    /// the same for the same campaign seed.
    static func requestSeed(campaign: UInt64, round: Int, request: Int) -> UInt64 {
        var random = SplitMix64(seed: campaign ^ UInt64(round) << 32 ^ UInt64(request))
        return random.next() >> 16
    }
}

/// One --proxy prefix's transfers in a round: a keep-alive session of 2 MB answers and a paced
/// 16 MB download, every request with a seed of its own, so that the back end's count for each
/// seed says how often that request reached it.
final class ProxiedTransfers {
    let session: Session
    let download: Download

    /// The session asks for all of `seeds` but the last, the download for the last.
    init(prefix: String, seeds: [UInt64], netns: String, rate: String) throws {
        let base = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        let requests = try seeds.dropLast().map { try ProxiedBytes.resource("\(base)/bytes/2000000?seed=\($0)") }
        session = Session(resources: requests, netns: netns, rate: rate)
        download = Download(
            resource: try ProxiedBytes.resource("\(base)/bytes/16000000?seed=\(seeds.last ?? 0)"), netns: netns,
            rate: rate)
    }

    func start() throws {
        try session.start()
        try download.start()
    }

    func stop() {
        session.stop()
        download.stop()
    }

    struct Judged {
        var outcomes: [(what: String, outcome: Download.Outcome)]
        /// Each request's URL, and whether its client was answered whole.
        var requests: [(url: String, answered: Bool)]
    }

    /// Waits for both and judges them like their unproxied kinds.
    func finish() -> Judged {
        let sessionOutcome = session.finish()
        let downloadOutcome = download.finish()
        return Judged(
            outcomes: [
                ("proxied session of \(session.resources.first?.url ?? "")…", sessionOutcome),
                ("proxied download of \(download.resource.url)", downloadOutcome),
            ],
            requests: session.resources.map { ($0.url, sessionOutcome == .ok) }
                + [(download.resource.url, downloadOutcome == .ok)])
    }

    /// Every proxied request's count at the back end (`asked` by seed): those asked more than
    /// once, and those never asked though their client was answered.
    static func tally(_ judged: [Judged], asked: (UInt64) -> Int) -> (checked: Int, twice: [String], never: [String]) {
        var twice: [String] = []
        var never: [String] = []
        var checked = 0
        for request in judged.flatMap(\.requests) {
            guard let seed = ProxiedBytes.parse(request.url)?.seed else { continue }
            checked += 1
            let times = asked(seed)
            if times > 1 { twice.append("\(request.url) (\(times) times)") }
            if times == 0 && request.answered { never.append(request.url) }
        }
        return (checked, twice, never)
    }
}
