/// What the service does with a request, decided from its head alone.
public enum DemoRoute: Sendable, Equatable {
    /// Send this response once the request body (if any) has been read and discarded.
    case respond(DemoResponse)
    /// Hash the request body and answer with its SHA-256.
    case sha256
}

/// Maps request heads to routes: the demo service's endpoints.
///
/// | Endpoint              | Answer                                          |
/// |-----------------------|-------------------------------------------------|
/// | `GET /bytes/N?seed=S` | N bytes of splitmix64 output seeded with S (0)  |
/// | `POST /sha256`        | hex SHA-256 of the body, then `\n`              |
/// | `GET /version`        | the version file, trimmed, then `\n`            |
/// | `GET /health`         | `ok\n`                                          |
public struct DemoRouter {
    /// Reads the version file; `nil` when it cannot be read. Called per request so an upgrade
    /// that rewrites the file is visible without a restart.
    public var readVersion: () -> [UInt8]?

    public init(readVersion: @escaping () -> [UInt8]?) {
        self.readVersion = readVersion
    }

    public func route(_ head: HTTPRequestHead) -> DemoRoute {
        guard head.method == "GET" || head.method == "POST" else {
            return .respond(.text(.methodNotAllowed, "method not allowed\n", headers: [allow("GET, POST")]))
        }
        let (path, query) = Self.split(target: head.target)
        let isGet = head.method == "GET"

        if path == "/sha256" {
            return isGet ? .respond(methodNotAllowed(allowing: "POST")) : .sha256
        }
        if path == "/health" {
            return isGet ? .respond(.text(.ok, "ok\n")) : .respond(methodNotAllowed(allowing: "GET"))
        }
        if path == "/version" {
            guard isGet else { return .respond(methodNotAllowed(allowing: "GET")) }
            guard let contents = readVersion() else {
                return .respond(.text(.internalServerError, "version file unreadable\n"))
            }
            return .respond(.text(.ok, String(decoding: Self.trimmingWhitespace(contents), as: UTF8.self) + "\n"))
        }
        if path.hasPrefix("/bytes/") {
            guard isGet else { return .respond(methodNotAllowed(allowing: "GET")) }
            return .respond(bytes(count: path.dropFirst("/bytes/".count), query: query))
        }
        return .respond(.text(.notFound, "not found\n"))
    }

    private func bytes(count text: Substring, query: Substring) -> DemoResponse {
        guard let count = HTTPRequestParser.parseDecimal(text) else {
            return .text(.badRequest, "N must be a decimal unsigned 64-bit integer\n")
        }
        var seed: UInt64 = 0
        for parameter in query.split(separator: "&") where parameter.hasPrefix("seed=") {
            guard let value = HTTPRequestParser.parseDecimal(parameter.dropFirst("seed=".count)) else {
                return .text(.badRequest, "seed must be a decimal unsigned 64-bit integer\n")
            }
            seed = value
        }
        return DemoResponse(
            status: .ok, contentType: "application/octet-stream",
            body: .splitMix(SplitMix64Stream(seed: seed, length: count)))
    }

    private func allow(_ methods: String) -> HTTPHeader {
        HTTPHeader(name: "Allow", value: methods)
    }

    private func methodNotAllowed(allowing methods: String) -> DemoResponse {
        .text(.methodNotAllowed, "method not allowed\n", headers: [allow(methods)])
    }

    /// Splits origin-form `path?query` (RFC 9112 §3.2.1).
    static func split(target: String) -> (path: Substring, query: Substring) {
        guard let mark = target.firstIndex(of: "?") else { return (target[...], "") }
        return (target[..<mark], target[target.index(after: mark)...])
    }

    static func trimmingWhitespace(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        let isSpace: (UInt8) -> Bool = { [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains($0) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else {
            return []
        }
        return bytes[first...last]
    }
}
