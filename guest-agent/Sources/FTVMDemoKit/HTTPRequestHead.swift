/// One header field as received; `name` keeps the client's spelling.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public struct HTTPVersion: Sendable, Equatable, CustomStringConvertible {
    public var major: UInt8
    public var minor: UInt8

    public init(major: UInt8, minor: UInt8) {
        self.major = major
        self.minor = minor
    }

    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    public var description: String { "HTTP/\(major).\(minor)" }
}

/// The request line and header section of one request (RFC 9112 §2–§5).
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    public var target: String
    public var version: HTTPVersion
    public var headers: [HTTPHeader]

    public init(method: String, target: String, version: HTTPVersion, headers: [HTTPHeader] = []) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// All values of the fields named `name` (field names are case-insensitive, RFC 9110 §5.1).
    public func values(of name: String) -> [String] {
        let wanted = name.lowercased()
        return headers.filter { $0.name.lowercased() == wanted }.map(\.value)
    }

    /// The comma-separated list elements of all `name` fields, lowercased and trimmed.
    func tokens(of name: String) -> [String] {
        values(of: name).flatMap { $0.split(separator: ",") }.map { $0.trimmingOWS().lowercased() }
            .filter { !$0.isEmpty }
    }

    /// Whether the connection stays open after this exchange (RFC 9112 §9.3): HTTP/1.1 persists
    /// unless `Connection: close`; HTTP/1.0 closes unless `Connection: keep-alive`.
    public var keepAlive: Bool {
        let connection = tokens(of: "connection")
        if connection.contains("close") { return false }
        return version == .http1_0 ? connection.contains("keep-alive") : true
    }

    /// Whether the client waits for `100 Continue` before sending the body (RFC 9110 §10.1.1);
    /// curl does this for uploads over 1 MiB and would otherwise stall for a second.
    public var expectsContinue: Bool {
        version != .http1_0 && tokens(of: "expect").contains("100-continue")
    }
}

extension StringProtocol {
    /// Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3) from both ends.
    func trimmingOWS() -> String {
        let isOWS: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isOWS($0) }), let last = lastIndex(where: { !isOWS($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
