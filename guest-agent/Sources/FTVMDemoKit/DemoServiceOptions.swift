/// Command-line options of `ftvm-demo-service`, parsed here so the rules are unit-tested.
public struct DemoServiceOptions: Sendable, Equatable {
    public var port: UInt16 = 80
    /// IPv4 address to bind, network byte order (the four dotted-quad numbers in order).
    public var address: [UInt8] = [0, 0, 0, 0]
    public var versionFile = "/etc/ftvm/version"
    /// The line protocol's port (`CommandSession`); nil: no command listener.
    public var commandPort: UInt16?
    /// Where the command port's trim requests go; nil: the agent's socket, /run/ftvm/trim.sock.
    public var trimSocket: String?
    /// The reverse proxy's port (`GET|POST /proxy/PATH`); nil: no proxy.
    public var proxyPort: UInt16?
    /// The back end the proxy forwards to: IPv4 address (network order) and port.
    public var proxyTarget = ProxyTarget(address: [10, 77, 0, 1], port: 9000)

    public init() {}

    public static let usage = """
        usage: ftvm-demo-service [--port PORT] [--address IPV4] [--version-file PATH]
                                 [--command-port PORT] [--trim-socket PATH]
                                 [--proxy-port PORT] [--proxy-to IPV4:PORT]
          --port PORT          HTTP port, 0 picks a free one (default 80)
          --address IPV4       address to listen on (default 0.0.0.0)
          --version-file PATH  file served by GET /version and VERSION (default /etc/ftvm/version)
          --command-port PORT  also serve the line protocol (PING, ECHO, BYTES, VERSION) on PORT,
                               0 picks a free one (default: none); after each reply it asks ftvm
                               to trim the connection (docs/trim-api.md)
          --trim-socket PATH   where trim requests go (default /run/ftvm/trim.sock, the agent's)
          --proxy-port PORT    also serve a reverse proxy on PORT: GET|POST /proxy/PATH is sent as
                               PATH to the back end (default: none)
          --proxy-to IPV4:PORT the proxy's back end (default 10.77.0.1:9000)

        HTTP: GET|HEAD /bytes/N?seed=S, /chunked/N?seed=S&chunk=K&trailer=1, /random/N, /version,
        /health, /nocontent; POST /sha256.
        """

    public enum ParseError: Error, Sendable, Equatable {
        case helpRequested
        /// Message for stderr, followed by the usage.
        case invalid(String)
    }

    /// Parses the arguments after the program name.
    public static func parse(_ arguments: [String]) throws(ParseError) -> DemoServiceOptions {
        var options = DemoServiceOptions()
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            if flag == "-h" || flag == "--help" { throw .helpRequested }
            guard
                [
                    "--port", "--address", "--version-file", "--command-port", "--trim-socket", "--proxy-port",
                    "--proxy-to",
                ].contains(flag)
            else {
                throw .invalid("unknown argument '\(flag)'")
            }
            guard let value = rest.popFirst() else { throw .invalid("\(flag) needs a value") }
            switch flag {
            case "--port":
                guard let port = HTTPRequestParser.parseDecimal(value), port <= UInt64(UInt16.max) else {
                    throw .invalid("invalid port '\(value)'")
                }
                options.port = UInt16(port)
            case "--command-port":
                guard let port = HTTPRequestParser.parseDecimal(value), port <= UInt64(UInt16.max) else {
                    throw .invalid("invalid command port '\(value)'")
                }
                options.commandPort = UInt16(port)
            case "--proxy-port":
                guard let port = HTTPRequestParser.parseDecimal(value), port > 0, port <= UInt64(UInt16.max) else {
                    throw .invalid("invalid proxy port '\(value)'")
                }
                options.proxyPort = UInt16(port)
            case "--proxy-to":
                let parts = value.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, let address = parseIPv4(String(parts[0])),
                    let port = HTTPRequestParser.parseDecimal(parts[1]), port > 0, port <= UInt64(UInt16.max)
                else { throw .invalid("invalid back end '\(value)': want IPV4:PORT") }
                options.proxyTarget = ProxyTarget(address: address, port: UInt16(port))
            case "--trim-socket":
                guard !value.isEmpty else { throw .invalid("--trim-socket needs a path") }
                options.trimSocket = value
            case "--address":
                guard let address = parseIPv4(value) else { throw .invalid("invalid IPv4 address '\(value)'") }
                options.address = address
            default:
                guard !value.isEmpty else { throw .invalid("--version-file needs a path") }
                options.versionFile = value
            }
        }
        if let commandPort = options.commandPort, commandPort != 0, commandPort == options.port {
            throw .invalid("--command-port must differ from --port")
        }
        if let proxyPort = options.proxyPort, proxyPort == options.port || proxyPort == options.commandPort {
            throw .invalid("--proxy-port must differ from --port and --command-port")
        }
        return options
    }

    /// Strict dotted quad: four decimal numbers 0...255, nothing else.
    static func parseIPv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count <= 3, let value = HTTPRequestParser.parseDecimal(part), value <= 255 else { return nil }
            bytes.append(UInt8(value))
        }
        return bytes
    }
}

/// Where the demo service's reverse proxy sends what it is asked for.
public struct ProxyTarget: Sendable, Equatable {
    /// IPv4, network byte order.
    public var address: [UInt8]
    public var port: UInt16

    public init(address: [UInt8], port: UInt16) {
        self.address = address
        self.port = port
    }
}
