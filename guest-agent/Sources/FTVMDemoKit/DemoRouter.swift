/// What the service does with a request, decided from its head alone.
public enum DemoRoute: Sendable, Equatable {
    /// Send this response once the request body (if any) has been read and discarded.
    case respond(DemoResponse)
    /// Hash the request body and answer with its SHA-256.
    case sha256
}

/// Maps request heads to routes: the demo service's endpoints.
///
/// | Endpoint                                 | Answer                                                            |
/// |------------------------------------------|-------------------------------------------------------------------|
/// | `GET /bytes/N?seed=S`                    | N bytes of splitmix64 output seeded with S (0), with a strong     |
/// |                                          | `ETag: "b-<N hex>-<S hex>"` and `Accept-Ranges: bytes`; one       |
/// |                                          | `Range` (`bytes=A-`, `A-B`, `-L`) gets 206 or 416 (see below)     |
/// | `GET /chunked/N?seed=S&chunk=K&trailer=1`| the same N bytes, `Transfer-Encoding: chunked` in chunks of K     |
/// |                                          | (4096); `trailer=1` adds the trailer field `X-Length: N`          |
/// | `GET /random/N`                          | N bytes of splitmix64 output seeded per request by the kernel     |
/// | `POST /sha256`                           | hex SHA-256 of the body, then `\n`                                |
/// | `GET /version`                           | the version file, trimmed, then `\n`                              |
/// | `GET /health`                            | `ok\n`                                                            |
/// | `GET /nocontent`                         | `204 No Content`: no body, no Content-Type, no Content-Length     |
///
/// `HEAD` works on every `GET` endpoint: the same head, no body (`DemoSession` leaves it out),
/// and for `/random/N` no seed is drawn. An HTTP/1.0 client cannot read chunked (RFC 9112 §7),
/// so it gets `/chunked/N` with a Content-Length instead: the same payload bytes.
///
/// Only `/bytes/N` serves ranges, like nginx's static files, so that a client (or a replay
/// after failover) can resume with `Range: bytes=A-` and `If-Range: <ETag>`. A GET with one
/// satisfiable range gets `206 Partial Content`, its `Content-Range`, and those bytes of the
/// same stream; one starting at or past N (any range when N is 0) gets `416 Range Not
/// Satisfiable` with `Content-Range: bytes */N`. A Range that is invalid, asks for several
/// ranges, uses another unit, or comes with an `If-Range` other than the ETag itself (a weak
/// tag or a date never matches) is ignored: the full 200 (RFC 9110 §13.1.5, §14.2). HEAD
/// ignores Range, as §14.2 requires of every method but GET. `/chunked/N` and `/random/N` have
/// neither ETag nor Accept-Ranges: one is the unranged fallback, the other has no stable bytes.
///
/// Every answer but `/random/N` is a function of the request (and the version file), so a
/// backup replaying the request regenerates it byte for byte; the ETag is a function of (N, S)
/// alone, so a primary and a backup guest agree on it. `/random/N` exists to break that
/// on purpose: its replay differs, and the framework must notice and reset the connection.
public struct DemoRouter {
    /// Reads the version file; `nil` when it cannot be read. Called per request so an upgrade
    /// that rewrites the file is visible without a restart.
    public var readVersion: () -> [UInt8]?

    /// Draws the seed of one `GET /random/N` answer. Called once per such request (and not for
    /// one rejected with 400 or 405, nor for HEAD); tests inject a deterministic source.
    public var randomSeed: () -> UInt64

    public init(readVersion: @escaping () -> [UInt8]?, randomSeed: @escaping () -> UInt64 = DemoRouter.kernelRandomSeed)
    {
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

    public static let defaultChunkSize: UInt64 = 4096

    public func route(_ head: HTTPRequestHead) -> DemoRoute {
        guard ["GET", "HEAD", "POST"].contains(head.method) else {
            return .respond(.text(.methodNotAllowed, "method not allowed\n", headers: [allow("GET, HEAD, POST")]))
        }
        let (path, query) = Self.split(target: head.target)
        // HEAD is GET without the body, so every GET endpoint takes it.
        let isGet = head.method != "POST"

        if path == "/sha256" {
            return isGet ? .respond(methodNotAllowed(allowing: "POST")) : .sha256
        }
        guard isGet else {
            return .respond(Self.isGetEndpoint(path) ? methodNotAllowed(allowing: "GET, HEAD") : Self.notFound)
        }
        if path == "/health" {
            return .respond(.text(.ok, "ok\n"))
        }
        if path == "/nocontent" {
            return .respond(.noContent)
        }
        if path == "/version" {
            guard let contents = readVersion() else {
                return .respond(.text(.internalServerError, "version file unreadable\n"))
            }
            return .respond(.text(.ok, String(decoding: Self.trimmingWhitespace(contents), as: UTF8.self) + "\n"))
        }
        if path.hasPrefix("/bytes/") {
            return .respond(bytes(count: path.dropFirst("/bytes/".count), query: query, head: head))
        }
        if path.hasPrefix("/chunked/") {
            return .respond(chunked(count: path.dropFirst("/chunked/".count), query: query, version: head.version))
        }
        if path.hasPrefix("/random/") {
            return .respond(random(count: path.dropFirst("/random/".count), drawSeed: head.method == "GET"))
        }
        return .respond(Self.notFound)
    }

    private static let notFound = DemoResponse.text(.notFound, "not found\n")

    /// Whether `path` names a GET endpoint, for the 405 a POST to it gets (a POST elsewhere is 404).
    private static func isGetEndpoint(_ path: Substring) -> Bool {
        ["/health", "/nocontent", "/version"].contains(path)
            || ["/bytes/", "/chunked/", "/random/"].contains { path.hasPrefix($0) }
    }

    /// `/bytes/N`: the whole payload (200), or the slice an honoured `Range` selects (206, 416).
    private func bytes(count text: Substring, query: Substring, head: HTTPRequestHead) -> DemoResponse {
        guard let count = HTTPRequestParser.parseDecimal(text) else { return Self.badCount }
        guard let seed = Self.seed(in: query) else { return Self.badSeed }
        let entityTag = Self.entityTag(count: count, seed: seed)
        let validators = [
            HTTPHeader(name: "ETag", value: entityTag), HTTPHeader(name: "Accept-Ranges", value: "bytes"),
        ]
        guard let range = Self.honouredRange(in: head, entityTag: entityTag) else {
            return Self.octetStream(.splitMix(SplitMix64Stream(seed: seed, length: count)), headers: validators)
        }
        guard let selected = range.resolved(length: count) else {
            let contentRange = HTTPHeader(name: "Content-Range", value: "bytes */\(count)")
            return .text(.rangeNotSatisfiable, "range not satisfiable\n", headers: [contentRange])
        }
        let contentRange = HTTPHeader(
            name: "Content-Range", value: "bytes \(selected.lowerBound)-\(selected.upperBound)/\(count)")
        let slice = SplitMix64Stream(seed: seed, length: selected.upperBound + 1, offset: selected.lowerBound)
        return Self.octetStream(.splitMix(slice), status: .partialContent, headers: [contentRange] + validators)
    }

    /// `/bytes/N`'s strong validator: a function of (N, S) only, since they fix every byte, so
    /// any guest serving the resource, and any replay of the request, names it the same.
    private static func entityTag(count: UInt64, seed: UInt64) -> String {
        "\"b-\(String(count, radix: 16))-\(String(seed, radix: 16))\""
    }

    /// The range a request asks for, if the server should honour it: only on GET (RFC 9110
    /// §14.2), for exactly one valid Range field, and when there is no If-Range or it is exactly
    /// `entityTag` (§13.1.5: strong comparison, so a weak tag never matches; with no
    /// Last-Modified, neither does a date). Otherwise the full 200 is the answer.
    private static func honouredRange(in head: HTTPRequestHead, entityTag: String) -> ByteRange? {
        guard head.method == "GET" else { return nil }
        let ranges = head.values(of: "range")
        let conditions = head.values(of: "if-range")
        guard ranges.count == 1, conditions.isEmpty || conditions == [entityTag] else { return nil }
        return ByteRange(rangeField: ranges[0])
    }

    /// `/bytes/N`'s payload in chunks of K. HTTP/1.0 gets it with a Content-Length (see the table).
    private func chunked(count text: Substring, query: Substring, version: HTTPVersion) -> DemoResponse {
        guard let count = HTTPRequestParser.parseDecimal(text) else { return Self.badCount }
        guard let seed = Self.seed(in: query) else { return Self.badSeed }
        var chunkSize = Self.defaultChunkSize
        if let value = Self.parameter("chunk", in: query) {
            guard let parsed = HTTPRequestParser.parseDecimal(value), parsed > 0 else {
                return .text(.badRequest, "chunk must be a decimal unsigned 64-bit integer above 0\n")
            }
            chunkSize = parsed
        }
        var trailer = false
        if let value = Self.parameter("trailer", in: query) {
            guard value == "0" || value == "1" else { return .text(.badRequest, "trailer must be 0 or 1\n") }
            trailer = value == "1"
        }
        guard version != .http1_0 else {
            return Self.octetStream(.splitMix(SplitMix64Stream(seed: seed, length: count)))
        }
        return Self.octetStream(
            .chunked(ChunkedSplitMix64Stream(seed: seed, length: count, chunkSize: chunkSize, trailer: trailer)))
    }

    /// A splitmix64 stream rather than getrandom(2) bytes: `DemoSession` regenerates unsent
    /// output on every `peek` and commits only what the socket took, so the body must be a
    /// function of (seed, offset). Raw kernel bytes would need the unsent rest buffered per
    /// connection, up to N. The query is ignored; there is no seed to choose. A HEAD sends no
    /// body, so it draws no seed (the stream it describes is never generated).
    private func random(count text: Substring, drawSeed: Bool) -> DemoResponse {
        guard let count = HTTPRequestParser.parseDecimal(text) else { return Self.badCount }
        return Self.octetStream(.splitMix(SplitMix64Stream(seed: drawSeed ? randomSeed() : 0, length: count)))
    }

    /// The `seed` parameter (0 when absent), or nil when it is not a decimal UInt64.
    private static func seed(in query: Substring) -> UInt64? {
        guard let value = parameter("seed", in: query) else { return 0 }
        return HTTPRequestParser.parseDecimal(value)
    }

    /// The value of the last `name=` parameter of `query`; other parameters are ignored.
    private static func parameter(_ name: String, in query: Substring) -> Substring? {
        let prefix = name + "="
        return query.split(separator: "&").last { $0.hasPrefix(prefix) }?.dropFirst(prefix.count)
    }

    private static let badSeed = DemoResponse.text(.badRequest, "seed must be a decimal unsigned 64-bit integer\n")
    private static let badCount = DemoResponse.text(.badRequest, "N must be a decimal unsigned 64-bit integer\n")

    private static func octetStream(
        _ body: DemoResponse.Body, status: HTTPStatus = .ok, headers: [HTTPHeader] = []
    ) -> DemoResponse {
        DemoResponse(status: status, contentType: "application/octet-stream", headers: headers, body: body)
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
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else {
            return []
        }
        return bytes[first...last]
    }
}
