/// "Connection X is complete up to client offset C and server offset S, and a new connection at
/// that point is equivalent": a guest service's explicit trim of one TCP connection
/// (docs/trim-api.md). The service sends it to the agent as a datagram; the agent pushes it into
/// the channel's trim ring; the host's relay drops the connection's log up to C once the client
/// has acknowledged S.
public struct TrimRequest: Hashable, Sendable {
    /// Where services send the datagram; the agent binds it (mode 0666 under a 0755 /run/ftvm).
    public static let socketPath = "/run/ftvm/trim.sock"

    /// The client's IPv4 address, first octet most significant (10.0.0.1 is 0x0A00_0001).
    public var clientAddress: UInt32
    public var clientPort: UInt16
    /// The service's (the guest's) port: the connection's local port.
    public var serverPort: UInt16
    /// Bytes the service has read from the connection since accept, through the end of the
    /// completed exchange.
    public var clientOffset: UInt64
    /// Bytes the service has written to the connection since accept, through the end of the reply.
    public var serverOffset: UInt64

    public init(
        clientAddress: UInt32, clientPort: UInt16, serverPort: UInt16, clientOffset: UInt64, serverOffset: UInt64
    ) {
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.serverPort = serverPort
        self.clientOffset = clientOffset
        self.serverOffset = serverOffset
    }

    // MARK: The datagram

    static let prefix = Array("ftvm-trim 1 ".utf8)
    /// The longest well-formed datagram: prefix, 255.255.255.255, two 5-digit ports, two 20-digit
    /// offsets, four spaces and the newline (83 bytes). A receive buffer this large sees any
    /// longer datagram as too long.
    public static let maximumDatagramLength = prefix.count + 15 + 2 * 5 + 2 * 20 + 4 + 1

    /// The datagram a service sends to the agent:
    /// `ftvm-trim 1 CLIENT-IPV4 CLIENT-PORT SERVER-PORT CLIENT-OFFSET SERVER-OFFSET\n`,
    /// decimal without leading zeros, one space between fields, e.g.
    /// `ftvm-trim 1 10.0.0.7 40312 7000 1234 56789\n`.
    public var datagram: [UInt8] {
        let a = clientAddress
        let address = "\(a >> 24).\(a >> 16 & 0xFF).\(a >> 8 & 0xFF).\(a & 0xFF)"
        return Array("ftvm-trim 1 \(address) \(clientPort) \(serverPort) \(clientOffset) \(serverOffset)\n".utf8)
    }

    /// Parses a datagram; nil when it is anything but the exact form `datagram` produces: the
    /// `ftvm-trim 1` prefix, a dotted quad, ports 1...65535, offsets within UInt64, single spaces,
    /// decimal without signs or leading zeros, one final newline and nothing after it. Never
    /// traps and allocates nothing (the agent parses up to 256 of these per tick).
    ///
    /// Strict on purpose: a truncated datagram must not read as a smaller offset (so the newline
    /// is required), and anything the parser would have to guess at is a client bug to report.
    public init?(datagram: UnsafeRawBufferPointer) {
        var scanner = DecimalScanner(bytes: datagram)
        guard scanner.literal(Self.prefix) else { return nil }
        var address: UInt32 = 0
        for octet in 0..<4 {
            if octet > 0 { guard scanner.literal(UInt8(ascii: ".")) else { return nil } }
            guard let value = scanner.decimal(maximum: 255) else { return nil }
            address = address << 8 | UInt32(value)
        }
        guard scanner.literal(UInt8(ascii: " ")), let clientPort = scanner.decimal(maximum: 65535), clientPort > 0,
            scanner.literal(UInt8(ascii: " ")), let serverPort = scanner.decimal(maximum: 65535), serverPort > 0,
            scanner.literal(UInt8(ascii: " ")), let clientOffset = scanner.decimal(maximum: .max),
            scanner.literal(UInt8(ascii: " ")), let serverOffset = scanner.decimal(maximum: .max),
            scanner.literal(UInt8(ascii: "\n")), scanner.atEnd
        else { return nil }
        self.init(
            clientAddress: address, clientPort: UInt16(clientPort), serverPort: UInt16(serverPort),
            clientOffset: clientOffset, serverOffset: serverOffset)
    }
}

/// A cursor over untrusted bytes that reads only canonical decimals.
private struct DecimalScanner {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    var atEnd: Bool { index == bytes.count }

    mutating func literal(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    mutating func literal(_ text: [UInt8]) -> Bool {
        guard bytes.count - index >= text.count else { return false }
        for (offset, byte) in text.enumerated() where bytes[index + offset] != byte { return false }
        index += text.count
        return true
    }

    /// One or more digits, no leading zero unless the number is 0, at most `maximum`.
    mutating func decimal(maximum: UInt64) -> UInt64? {
        let start = index
        var value: UInt64 = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
            guard !overflow, !carry, sum <= maximum else { return nil }
            value = sum
            index += 1
        }
        let digits = index - start
        guard digits > 0, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        return value
    }
}
