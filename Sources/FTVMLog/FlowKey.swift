/// The identity of one client connection: the client's address and port and the service's.
///
/// Addresses are IPv4 as 32-bit values with the first octet most significant (as on the wire and
/// as `FTVMWire.IPv4Address.rawValue`), so the relay converts without reordering bytes.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var clientAddress: UInt32
    public var clientPort: UInt16
    public var serverAddress: UInt32
    public var serverPort: UInt16

    public init(clientAddress: UInt32, clientPort: UInt16, serverAddress: UInt32, serverPort: UInt16) {
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.serverAddress = serverAddress
        self.serverPort = serverPort
    }

    public var description: String {
        "\(Self.dotted(clientAddress)):\(clientPort)→\(Self.dotted(serverAddress)):\(serverPort)"
    }

    private static func dotted(_ address: UInt32) -> String {
        "\(address >> 24).\((address >> 16) & 0xFF).\((address >> 8) & 0xFF).\(address & 0xFF)"
    }
}

/// The options a SYN (or SYN/ACK) carried that a replay must repeat: RFC 7323 and RFC 2018 are
/// negotiated only on the handshake, so the backup must see exactly what the primary saw.
public struct SYNOptions: Hashable, Sendable {
    /// Kind 2: the MSS the sender accepts.
    public var maximumSegmentSize: UInt16?
    /// Kind 3: the window shift count.
    public var windowScale: UInt8?
    /// Kind 4 (RFC 2018).
    public var sackPermitted: Bool
    /// Kind 8 on the SYN (RFC 7323 §3.2): the sender offers timestamps.
    public var timestamps: Bool

    public init(
        maximumSegmentSize: UInt16? = nil, windowScale: UInt8? = nil, sackPermitted: Bool = false,
        timestamps: Bool = false
    ) {
        self.maximumSegmentSize = maximumSegmentSize
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.timestamps = timestamps
    }

    /// The 4 bytes stored in a record: MSS (UInt16 LE), window scale, then presence bits
    /// (0x01 MSS present, 0x02 window scale present, 0x04 SACK permitted, 0x08 timestamps).
    var encoded: UInt32 {
        var bits: UInt32 = 0
        if maximumSegmentSize != nil { bits |= 0x01 }
        if windowScale != nil { bits |= 0x02 }
        if sackPermitted { bits |= 0x04 }
        if timestamps { bits |= 0x08 }
        return UInt32(maximumSegmentSize ?? 0) | UInt32(windowScale ?? 0) << 16 | bits << 24
    }

    init(encoded: UInt32) {
        let bits = encoded >> 24
        maximumSegmentSize = bits & 0x01 != 0 ? UInt16(truncatingIfNeeded: encoded) : nil
        windowScale = bits & 0x02 != 0 ? UInt8(truncatingIfNeeded: encoded >> 16) : nil
        sackPermitted = bits & 0x04 != 0
        timestamps = bits & 0x08 != 0
    }
}
