/// What one Ethernet frame is, decided in a single pass — the relay's first step for every frame.
///
/// `classify` never traps, whatever the bytes: every length is checked before it is used, and
/// malformed frames become `.truncated` or `.illegal` for the counters.
public enum FrameClass {
    /// ARP for IPv4 over Ethernet.
    case arp(ARPView)
    /// An unfragmented IPv4 packet carrying a well-formed TCP segment.
    case ipv4TCP(TCPSegmentView)
    /// A piece of a fragmented IPv4 datagram (any protocol); its payload is not parsed.
    case ipv4Fragment(IPv4View)
    /// An unfragmented IPv4 packet of another protocol (`view.protocolNumber`: ICMP, UDP, …).
    case ipv4Other(IPv4View)
    /// Another EtherType (IPv6, LLDP, an 802.3 length field, …).
    case nonIPv4(EtherType)
    /// Something the relay's untagged IPv4-over-Ethernet links do not carry.
    case unsupported(UnsupportedFrame)
    /// The frame ends before a fixed-size header of the given layer.
    case truncated(WireLayer)
    /// A length field contradicts the others or the frame.
    case illegal(WireError)

    /// Classifies one frame (Ethernet header first, no FCS).
    public static func classify(_ frame: UnsafeMutableRawBufferPointer) -> FrameClass {
        guard let ethernet = EthernetView(frame: frame) else { return .truncated(.ethernet) }
        switch ethernet.etherType {
        case .ipv4:
            let ipv4: IPv4View
            do {
                guard let parsed = try IPv4View(frame: frame, offset: ethernet.payloadOffset) else {
                    return .truncated(.ipv4)
                }
                ipv4 = parsed
            } catch {
                return .illegal(error)
            }
            if ipv4.isFragment { return .ipv4Fragment(ipv4) }
            guard ipv4.protocolNumber == .tcp else { return .ipv4Other(ipv4) }
            do {
                guard let segment = try TCPSegmentView(ethernet: ethernet, ipv4: ipv4) else {
                    return .truncated(.tcp)
                }
                return .ipv4TCP(segment)
            } catch {
                return .illegal(error)
            }
        case .arp:
            switch ARPView.parse(frame: frame, offset: ethernet.payloadOffset) {
            case .view(let view): return .arp(view)
            case .truncated: return .truncated(.arp)
            case .unsupported(let unsupported): return .unsupported(.arpFormat(unsupported))
            }
        case let type where type.isVLANTag:
            return .unsupported(.vlanTagged(type))
        case let type:
            return .nonIPv4(type)
        }
    }

    /// The case without its payload, for indexing an array of counters.
    public enum Kind: Int, CaseIterable, Sendable {
        case arp, ipv4TCP, ipv4Fragment, ipv4Other, nonIPv4, unsupported, truncated, illegal
    }

    /// Which case this is, for `counters[frameClass.kind.rawValue] += 1`.
    public var kind: Kind {
        switch self {
        case .arp: .arp
        case .ipv4TCP: .ipv4TCP
        case .ipv4Fragment: .ipv4Fragment
        case .ipv4Other: .ipv4Other
        case .nonIPv4: .nonIPv4
        case .unsupported: .unsupported
        case .truncated: .truncated
        case .illegal: .illegal
        }
    }

    /// The TCP segment, when there is one.
    public var tcpSegment: TCPSegmentView? {
        if case .ipv4TCP(let segment) = self { return segment }
        return nil
    }
}

/// A frame the relay's links do not carry, with what identifies it.
public enum UnsupportedFrame: Hashable, Sendable {
    /// An IEEE 802.1Q/802.1ad tag (its TPID). The relay's links are untagged.
    case vlanTagged(EtherType)
    /// ARP for something other than IPv4 over Ethernet.
    case arpFormat(ARPView.Unsupported)
}

/// The protocol layer whose fixed-size header a truncated frame cut short.
public enum WireLayer: Hashable, Sendable {
    case ethernet, arp, ipv4, tcp
}
