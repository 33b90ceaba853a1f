import FTVMSystem
import Foundation

/// The daemon's `/metrics` endpoint: a small blocking HTTP/1.1 server on its own thread, one
/// scrape at a time, each answered and closed (`Connection: close`). A scrape is one request
/// every few seconds; this keeps SwiftNIO out of a daemon that has no other use for it.
final class MetricsServer: Sendable {
    let listener: TCPListener
    var address: IPv4Endpoint { listener.address }

    init(listener: TCPListener) { self.listener = listener }

    /// Serves until `close()`; `exposition` runs on the server thread for each scrape.
    func start(exposition: @escaping @Sendable () -> [UInt8]) {
        let thread = Thread { [self] in
            while let stream = try? listener.accept() {
                stream.setTimeout(seconds: 5)
                guard let head = try? Self.readHead(stream) else { continue }
                try? stream.write(Self.response(to: head, exposition: exposition))
            }
        }
        thread.name = "ftvm-metrics"
        thread.start()
    }

    func close() { listener.shutdown() }

    /// The request line; the header lines after it are read and ignored (nothing in them
    /// changes the answer). nil when the client sent nothing.
    private static func readHead(_ stream: StreamSocket) throws -> String? {
        guard let line = try stream.readLine(limit: 8192) else { return nil }
        for _ in 0..<100 {
            guard let header = try stream.readLine(limit: 8192), !header.isEmpty, header != [UInt8(ascii: "\r")] else {
                break
            }
        }
        return String(decoding: line, as: UTF8.self)
    }

    /// The whole answer to one request line: the exposition for `GET /metrics` (with or without
    /// a query), headers alone for `HEAD`, 404, 405 or 400 for anything else.
    static func response(to requestLine: String, exposition: () -> [UInt8]) -> [UInt8] {
        let parts = requestLine.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return message(400, "Bad Request", "not an HTTP/1.x request line\n")
        }
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard path == "/metrics" else { return message(404, "Not Found", "ftvm serves /metrics only\n") }
        guard parts[0] == "GET" || parts[0] == "HEAD" else {
            return message(405, "Method Not Allowed", "use GET\n", extra: "Allow: GET, HEAD\r\n")
        }
        let body = exposition()
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + (parts[0] == "HEAD" ? [] : body)
    }

    private static func message(_ code: Int, _ reason: String, _ text: String, extra: String = "") -> [UInt8] {
        let head =
            "HTTP/1.1 \(code) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(text.utf8.count)\r\n\(extra)Connection: close\r\n\r\n"
        return Array((head + text).utf8)
    }
}
