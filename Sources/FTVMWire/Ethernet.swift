/// The EtherType field of an Ethernet II header (IEEE 802.3 clause 3.2.6; values from the IANA
/// registry).
public struct EtherType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let ipv4 = EtherType(rawValue: 0x0800)
    public static let arp = EtherType(rawValue: 0x0806)
    public static let ipv6 = EtherType(rawValue: 0x86DD)
    /// IEEE 802.1Q customer VLAN tag.
    public static let vlan = EtherType(rawValue: 0x8100)
    /// IEEE 802.1ad service VLAN tag (QinQ).
    public static let serviceVLAN = EtherType(rawValue: 0x88A8)
    /// The pre-standard QinQ tag some switches still emit.
    public static let legacyQinQ = EtherType(rawValue: 0x9100)

    /// Whether the field is a VLAN tag protocol identifier rather than a payload type. The relay's
    /// networks are untagged, so such frames are reported as unsupported.
    public var isVLANTag: Bool { self == .vlan || self == .serviceVLAN || self == .legacyQinQ }

    public var description: String {
        let hex = String(rawValue, radix: 16)
        return "0x" + String(repeating: "0", count: 4 - hex.count) + hex
    }
}

/// The Ethernet II header of one frame, as a tap and an AF_PACKET socket deliver it: no preamble,
/// no FCS, possibly padded after the payload up to the 60-byte minimum.
///
/// Like every view in this module it borrows the caller's buffer: no copy, no allocation, and it
/// is valid only while that buffer is.
public struct EthernetView {
    /// Destination, source, EtherType.
    public static let headerLength = 14

    /// The whole frame.
    public let frame: UnsafeMutableRawBufferPointer
    public let destination: MACAddress
    public let source: MACAddress
    /// What the payload is. A VLAN TPID here means a tagged frame (see `EtherType.isVLANTag`).
    public let etherType: EtherType

    /// `nil` when the frame is shorter than an Ethernet header.
    public init?(frame: UnsafeMutableRawBufferPointer) {
        guard frame.count >= Self.headerLength else { return nil }
        self.frame = frame
        destination = frame.wireMAC(at: 0)
        source = frame.wireMAC(at: 6)
        etherType = EtherType(rawValue: frame.wireU16(at: 12))
    }

    /// Where the payload (ARP, IPv4) starts in the frame.
    public var payloadOffset: Int { Self.headerLength }

    /// Overwrites the destination address (the checksums do not cover it).
    public func setDestination(_ mac: MACAddress) {
        frame.setWireMAC(mac, at: 0)
    }

    /// Overwrites the source address (the checksums do not cover it).
    public func setSource(_ mac: MACAddress) {
        frame.setWireMAC(mac, at: 6)
    }
}
