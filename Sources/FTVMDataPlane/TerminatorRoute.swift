import FTVMWire

/// Where the relay sends a frame when the pair terminates TLS on the host (docs/https.md).
///
/// The terminator has two sides, each a tap in a namespace of its own. The front answers at the
/// service's own address and MAC: the clients' TLS connections (TCP to the service on a public
/// TLS port) go there instead of to the guest, with the ARP its stack needs. The back is one more
/// client of the guest, with an address of its own: what it sends is logged and replayed like
/// any client's, and what the guest sends to its MAC goes back to it. Pure: no I/O.
public struct TerminatorRoute: Sendable, Equatable {
    public let service: IPv4Address
    /// The public ports the front terminates TLS on.
    public let publicPorts: Set<UInt16>
    /// The back side's MAC: the guest's frames to it go to the back tap.
    public let backMAC: MACAddress

    public init(service: IPv4Address, publicPorts: Set<UInt16>, backMAC: MACAddress) {
        self.service = service
        self.publicPorts = publicPorts
        self.backMAC = backMAC
    }

    /// Where a frame from the clients' side goes.
    public enum FromClients: Equatable, Sendable {
        /// To the guest, as without a terminator.
        case guest
        /// To the front only: a TLS connection's segment.
        case front
        /// To the guest and to the front: ARP, which both stacks answering at the service's
        /// address need (the front learns the clients' MACs from it).
        case both
    }

    public func route(fromClients frame: UnsafeMutableRawBufferPointer) -> FromClients {
        switch FrameClass.classify(frame) {
        case .ipv4TCP(let segment):
            return segment.ipv4.destination == service && publicPorts.contains(segment.destinationPort)
                ? .front : .guest
        case .arp:
            return .both
        default:
            return .guest
        }
    }

    /// Where a frame from the guest goes.
    public enum FromGuest: Equatable, Sendable {
        case clients
        case back
        /// Broadcast and multicast (the guest's ARP requests): both sides may be asked.
        case both
    }

    public func route(fromGuest frame: UnsafeMutableRawBufferPointer) -> FromGuest {
        guard let ethernet = EthernetView(frame: frame) else { return .clients }
        if ethernet.destination == backMAC { return .back }
        return ethernet.destination.isMulticast ? .both : .clients
    }
}
