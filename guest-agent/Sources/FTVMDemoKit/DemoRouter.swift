/// What the service does with a request, decided from its head alone.
public enum DemoRoute: Sendable, Equatable {
    /// Send this response once the request body (if any) has been read and discarded.
    case respond(DemoResponse)
    /// Hash the request body and answer with its SHA-256.
    case sha256
}

/// Maps request heads to routes: the demo service's endpoints.
///
/// | Endpoint              | Answer                                                        |
/// |-----------------------|---------------------------------------------------------------|
/// | `GET /bytes/N?seed=S` | N bytes of splitmix64 output seeded with S (0)                |
/// | `GET /random/N`       | N bytes of splitmix64 output seeded per request by the kernel |
/// | `POST /sha256`        | hex SHA-256 of the body, then `\n`                            |
/// | `GET /version`        | the version file, trimmed, then `\n`                          |
/// | `GET /health`         | `ok\n`                                                        |
///
/// Every answer but `/random/N` is a function of the request (and the version file), so a
/// backup replaying the request regenerates it byte for byte. `/random/N` exists to break that
/// on purpose: its replay differs, and the framework must notice and reset the connection.
public struct DemoRouter {
    /// Reads the version file; `nil` when it cannot be read. Called per request so an upgrade
    /// that rewrites the file is visible without a restart.
    public var readVersion: () -> [UInt8]?

    /// Draws the seed of one `GET /random/N` answer. Called once per such request (and not for
    /// one rejected with 400 or 405); tests inject a deterministic source.
    public var randomSeed: () -> UInt64

    public init(readVersion: @escaping () -> [UInt8]?, randomSeed: @escaping () -> UInt64 = DemoRouter.kernelRandomSeed) {
        self.readVersion = readVersion
        self.randomSeed = randomSeed
    }

    /// 64 bits from the kernel's CRNG. On Linux the stdlib's `SystemRandomNumberGenerator` is
    /// getrandom(2) with flags 0 and EINTR retried: it blocks only until the CRNG is seeded,
    /// which the Swift runtime has already waited for at startup (see docs/image.md, virtio-rng).
    public static func kernelRandomSeed() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
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
        if path.hasPrefix("/random/") {
            guard isGet else { return .respond(methodNotAllowed(allowing: "GET")) }
            return .respond(random(count: path.dropFirst("/random/".count)))
        }
        return .respond(.text(.notFound, "not found\n"))
    }

    private func bytes(count text: Substring, query: Substring) -> DemoResponse {
        guard let count = HTTPRequestParser.parseDecimal(text) else { return Self.badCount }
        var seed: UInt64 = 0
        for parameter in query.split(separator: "&") where parameter.hasPrefix("seed=") {
            guard let value = HTTPRequestParser.parseDecimal(parameter.dropFirst("seed=".count)) else {
                return .text(.badRequest, "seed must be a decimal unsigned 64-bit integer\n")
            }
            seed = value
        }
        return Self.octetStream(SplitMix64Stream(seed: seed, length: count))
    }

    /// A splitmix64 stream rather than getrandom(2) bytes: `DemoSession` regenerates unsent
    /// output on every `peek` and commits only what the socket took, so the body must be a
    /// function of (seed, offset). Raw kernel bytes would need the unsent rest buffered per
    /// connection, up to N. The query is ignored; there is no seed to choose.
    private func random(count text: Substring) -> DemoResponse {
        guard let count = HTTPRequestParser.parseDecimal(text) else { return Self.badCount }
        return Self.octetStream(SplitMix64Stream(seed: randomSeed(), length: count))
    }

    private static let badCount = DemoResponse.text(.badRequest, "N must be a decimal unsigned 64-bit integer\n")

    private static func octetStream(_ stream: SplitMix64Stream) -> DemoResponse {
        DemoResponse(status: .ok, contentType: "application/octet-stream", body: .splitMix(stream))
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
