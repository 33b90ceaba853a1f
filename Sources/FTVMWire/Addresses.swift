/// A 48-bit IEEE 802 MAC address, stored in one integer so it compares, hashes and copies
/// without touching memory outside the frame.
public struct MACAddress: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The address in the low 48 bits, first octet on the wire most significant.
    public let rawValue: UInt64

    /// Keeps the low 48 bits of `rawValue`.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    /// The address `a:b:c:d:e:f`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, _ e: UInt8, _ f: UInt8) {
        let high = UInt64(a) << 40 | UInt64(b) << 32 | UInt64(c) << 24
        self.init(rawValue: high | UInt64(d) << 16 | UInt64(e) << 8 | UInt64(f))
    }

    /// Parses `52:54:00:12:34:56` (colons or dashes, hex digits of either case).
    public init?(_ text: String) {
        var value: UInt64 = 0
        var octets = 0
        for part in text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false) {
            guard part.count == 2, let octet = UInt8(part, radix: 16) else { return nil }
            value = value << 8 | UInt64(octet)
            octets += 1
        }
        guard octets == 6 else { return nil }
        self.init(rawValue: value)
    }

    /// ff:ff:ff:ff:ff:ff, where a gratuitous ARP is sent.
    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    /// 00:00:00:00:00:00, the "unknown" target hardware address of an ARP request (RFC 826).
    public static let zero = MACAddress(rawValue: 0)

    /// The group bit (least significant bit of the first octet), set for broadcast too.
    public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }
    /// ff:ff:ff:ff:ff:ff.
    public var isBroadcast: Bool { self == .broadcast }

    /// The octet at `index` (0 is first on the wire).
    public func octet(_ index: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: rawValue >> UInt64(8 * (5 - index)))
    }

    public var description: String {
        var text = ""
        for index in 0..<6 {
            let octet = self.octet(index)
            if index > 0 { text += ":" }
            if octet < 16 { text += "0" }
            text += String(octet, radix: 16)
        }
        return text
    }
}

/// An IPv4 address as its 32-bit value (first octet most significant, as on the wire).
public struct IPv4Address: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The address `a.b.c.d`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad notation (`10.77.0.2`); nothing else (no shorthand forms).
    public init?(_ text: String) {
        var value: UInt32 = 0
        var octets = 0
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                let octet = UInt8(part)
            else { return nil }
            value = value << 8 | UInt32(octet)
            octets += 1
        }
        guard octets == 4 else { return nil }
        rawValue = value
    }

    /// 0.0.0.0 (RFC 1122 §3.2.1.3 "this host"; RFC 5227's ARP probes use it as sender).
    public static let any = IPv4Address(rawValue: 0)

    public var description: String {
        "\(rawValue >> 24).\(rawValue >> 16 & 0xFF).\(rawValue >> 8 & 0xFF).\(rawValue & 0xFF)"
    }
}
