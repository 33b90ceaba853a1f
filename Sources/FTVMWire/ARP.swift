/// The ARP operation code (RFC 826; IANA "ARP Operation Codes").
public struct ARPOperation: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let request = ARPOperation(rawValue: 1)
    public static let reply = ARPOperation(rawValue: 2)
}

/// An ARP packet for IPv4 over Ethernet (RFC 826): hardware type 1, protocol 0x0800, address
/// lengths 6 and 4 — the only kind on the relay's links. The backup announces itself with a
/// gratuitous ARP after it is resumed, so the client side learns its (identical) MAC again.
public struct ARPView {
    /// The fixed 28-byte body for IPv4 over Ethernet.
    public static let length = 28

    /// The whole frame (Ethernet header included).
    public let frame: UnsafeMutableRawBufferPointer
    /// Where the ARP body starts in the frame.
    public let offset: Int
    /// Request or reply (other codes, e.g. RARP's, are reported as they are).
    public let operation: ARPOperation
    public let senderMAC: MACAddress
    public let senderIP: IPv4Address
    public let targetMAC: MACAddress
    public let targetIP: IPv4Address

    /// Why an ARP packet was not parsed although it was long enough.
    public struct Unsupported: Hashable, Sendable {
        public let hardwareType: UInt16
        public let protocolType: UInt16
        public let hardwareLength: UInt8
        public let protocolLength: UInt8
    }

    enum Parsed {
        case view(ARPView)
        case truncated
        case unsupported(Unsupported)
    }

    /// Parses the ARP body at `offset`.
    static func parse(frame: UnsafeMutableRawBufferPointer, offset: Int) -> Parsed {
        guard offset >= 0, frame.count >= offset, frame.count - offset >= length else { return .truncated }
        let hardwareType = frame.wireU16(at: offset)
        let protocolType = frame.wireU16(at: offset + 2)
        let hardwareLength = frame.wireU8(at: offset + 4)
        let protocolLength = frame.wireU8(at: offset + 5)
        guard hardwareType == 1, protocolType == EtherType.ipv4.rawValue, hardwareLength == 6, protocolLength == 4
        else {
            return .unsupported(
                Unsupported(
                    hardwareType: hardwareType, protocolType: protocolType, hardwareLength: hardwareLength,
                    protocolLength: protocolLength))
        }
        return .view(ARPView(frame: frame, offset: offset))
    }

    private init(frame: UnsafeMutableRawBufferPointer, offset: Int) {
        self.frame = frame
        self.offset = offset
        operation = ARPOperation(rawValue: frame.wireU16(at: offset + 6))
        senderMAC = frame.wireMAC(at: offset + 8)
        senderIP = frame.wireIPv4(at: offset + 14)
        targetMAC = frame.wireMAC(at: offset + 18)
        targetIP = frame.wireIPv4(at: offset + 24)
    }

    /// `nil` when the frame is too short for an Ethernet header and an ARP body, or the ARP is
    /// not IPv4 over Ethernet (`FrameClass` tells these apart).
    public init?(frame: UnsafeMutableRawBufferPointer) {
        guard case .view(let view) = Self.parse(frame: frame, offset: EthernetView.headerLength) else {
            return nil
        }
        self = view
    }

    /// A gratuitous ARP announces the sender's own binding: sender and target IP are the same
    /// (RFC 5227 §3 "ARP Announcement"; both request and reply forms exist in the wild).
    public var isGratuitous: Bool { senderIP == targetIP }
}
