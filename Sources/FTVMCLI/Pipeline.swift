import ArgumentParser
import Foundation
import Glibc

/// `ftvm pipeline` (not in the help): the client of one pipelined session of `ftvm chaos`, which
/// runs it in the clients' namespace. It connects to the URLs' server, writes every request at
/// once (HTTP/1.1 pipelining, RFC 9112 §9.3.2), then reads the answers in order at `--rate`
/// bytes per second, each body to `OUTPUT.N`. curl no longer pipelines, and a replay must carry
/// requests the guest has not read yet as well as the answer in flight.
///
/// Exit status, as curl's for the same ends (so `ftvm chaos` judges both alike): 0 every answer
/// read whole, 56 the connection reset, 18 closed before the last answer ended, 28 nothing
/// arrived for 60 s, 22 a status of 400 or more, 1 anything else.
struct Pipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline", abstract: "One pipelined session of ftvm chaos (its client).", shouldDisplay: false)

    @Option(name: .long, help: "Bytes per second to read at.")
    var rate: Int

    @Option(name: .long, help: "Each answer's body goes to OUTPUT.N (N from 0).")
    var output: String

    @Argument(help: "http://ADDRESS[:PORT]/PATH, all on one server.")
    var urls: [String]

    struct Target: Equatable {
        var address: String
        var port: UInt16
        var path: String

        /// `http://A.B.C.D[:PORT]/PATH` (an IPv4 address: the session needs no resolver).
        init?(_ url: String) {
            guard url.hasPrefix("http://") else { return nil }
            let rest = url.dropFirst("http://".count)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let authority = rest[..<slash]
            path = slash == rest.endIndex ? "/" : String(rest[slash...])
            if let colon = authority.lastIndex(of: ":") {
                guard let port = UInt16(authority[authority.index(after: colon)...]) else { return nil }
                self.port = port
                address = String(authority[..<colon])
            } else {
                port = 80
                address = String(authority)
            }
            var probe = in_addr()
            guard inet_pton(AF_INET, address, &probe) == 1 else { return nil }
        }

        /// The targets of `urls` when every one is such a URL and all are on one server.
        static func oneServer(_ urls: [String]) -> [Target]? {
            let targets = urls.compactMap(Target.init)
            guard !targets.isEmpty, targets.count == urls.count,
                targets.allSatisfy({ $0.address == targets[0].address && $0.port == targets[0].port })
            else { return nil }
            return targets
        }
    }

    /// The requests of a session, written at once: one per target, the last one closing.
    static func requests(_ targets: [Target]) -> [UInt8] {
        Array(
            targets.enumerated().map { index, target in
                "GET \(target.path) HTTP/1.1\r\nHost: \(target.address):\(target.port)\r\n"
                    + (index == targets.count - 1 ? "Connection: close\r\n" : "") + "\r\n"
            }.joined().utf8)
    }

    func validate() throws {
        guard rate > 0 else { throw ValidationError("--rate must be more than 0") }
        guard Target.oneServer(urls) != nil else {
            throw ValidationError("every URL must be http://A.B.C.D[:PORT]/PATH, all on one server")
        }
    }

    func run() throws {
        guard let targets = Target.oneServer(urls) else { throw ExitCode(1) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ExitCode(1) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = targets[0].port.bigEndian
        inet_pton(AF_INET, targets[0].address, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Self.exit(for: errno) }
        var requests = Self.requests(targets)
        var sent = 0
        while sent < requests.count {
            let count = requests.withUnsafeMutableBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, 0) }
            guard count > 0 else { throw Self.exit(for: errno) }
            sent += count
        }
        requests = []
        var answers = PipelinedAnswers()
        var files: [Int: FileHandle] = [:]
        defer { files.values.forEach { try? $0.close() } }
        func file(_ index: Int) throws -> FileHandle {
            if let open = files[index] { return open }
            let path = "\(output).\(index)"
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw CommandFailure("cannot write \(path)") }
            files[index] = handle
            return handle
        }
        var failedStatus = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        let start = Date()
        var received = 0
        while answers.completed < targets.count {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { throw ExitCode(18) }  // closed before the last answer ended
            guard count > 0 else { throw Self.exit(for: errno) }
            received += count
            let events: [PipelinedAnswers.Event]
            do {
                events = try answers.feed(buffer[..<count])
            } catch {
                FileHandle.standardError.write(Data("ftvm pipeline: \(error)\n".utf8))
                throw ExitCode(1)
            }
            for event in events {
                switch event {
                case .body(let index, let bytes):
                    try file(index).write(contentsOf: bytes)
                case .complete(let index, let status):
                    _ = try file(index)  // (an empty body too)
                    if status >= 400 { failedStatus = true }
                }
            }
            // Paced: the fault should find answers in flight, and requests the guest has not read.
            let due = Double(received) / Double(rate) - Date().timeIntervalSince(start)
            if due > 0 { usleep(UInt32(min(due, 1) * 1_000_000)) }
        }
        if failedStatus { throw ExitCode(22) }
    }

    /// curl's exit status for how a socket call failed.
    static func exit(for error: Int32) -> ExitCode {
        switch error {
        case ECONNRESET, EPIPE: ExitCode(56)
        case EAGAIN, ETIMEDOUT: ExitCode(28)
        default: ExitCode(1)
        }
    }
}
