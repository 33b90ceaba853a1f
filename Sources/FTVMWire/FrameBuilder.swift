/// Everything needed to build one Ethernet + IPv4 + TCP frame.
///
/// Replay uses it for the fake SYN and ACK to the backup, for the ACKs sent to the backup on the
/// client's behalf, and for injecting logged client bytes.
public struct TCPFrameSpec: Hashable, Sendable {
    public var sourceMAC: MACAddress
    public var destinationMAC: MACAddress
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: SequenceNumber
    public var acknowledgmentNumber: SequenceNumber
    public var flags: TCPFlags
    public var window: UInt16
    public var options: TCPOptions
    /// The IPv4 Identification. With DF set it identifies nothing that gets reassembled
    /// (RFC 6864 §4.1), but Linux still counts it per connection; choose what the log suggests.
    public var identification: UInt16
    /// 64 by default, Linux's default (`net.ipv4.ip_default_ttl`), so replayed frames look like
    /// the guest's own.
    public var timeToLive: UInt8
    public var urgentPointer: UInt16

    public init(
        sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPv4Address, destination: IPv4Address,
        sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: SequenceNumber,
        acknowledgmentNumber: SequenceNumber, flags: TCPFlags, window: UInt16, options: TCPOptions = TCPOptions(),
        identification: UInt16 = 0, timeToLive: UInt8 = 64, urgentPointer: UInt16 = 0
    ) {
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.options = options
        self.identification = identification
        self.timeToLive = timeToLive
        self.urgentPointer = urgentPointer
    }
}

/// Builds frames into a caller's buffer: no allocation, checksums complete (no offload — the
/// frames go to a guest's virtio NIC or a tap, neither of which fills checksums in).
///
/// Frames are not padded to Ethernet's 60-byte minimum: taps and AF_PACKET sockets accept
/// short frames, and padding would only be more bytes to copy.
public enum FrameBuilder {
    /// Where the TCP header of a built frame starts: Ethernet (14) + IPv4 without options (20).
    public static let tcpHeaderOffset = EthernetView.headerLength + IPv4View.minimumHeaderLength
    /// The length of a built ARP frame: Ethernet (14) + ARP for IPv4 over Ethernet (28).
    public static let arpFrameLength = EthernetView.headerLength + ARPView.length

    /// The frame length `tcp(_:payload:into:)` produces for `spec` and a payload of
    /// `payloadLength` bytes.
    public static func tcpFrameLength(_ spec: TCPFrameSpec, payloadLength: Int) -> Int {
        tcpHeaderOffset + TCPSegmentView.minimumHeaderLength + spec.options.encodedLength + payloadLength
    }

    /// Builds an Ethernet II + IPv4 (IHL 5, DF, TTL from `spec`) + TCP frame at the start of `frame`.
    ///
    /// `payload` may already sit where it will go (the copy is a memmove), so replay can read
    /// logged bytes straight into the frame at `tcpFrameLength(spec, payloadLength: 0)`.
    ///
    /// - Returns: the frame length.
    /// - Throws: `.tcpOptionsTooLong`, `.payloadTooLarge`, `.bufferTooSmall`; nothing is
    ///   written then.
    public static func tcp(
        _ spec: TCPFrameSpec, payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        into frame: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        let optionsLength = spec.options.encodedLength
        guard optionsLength <= TCPOptions.maximumLength else { throw .tcpOptionsTooLong(length: optionsLength) }
        let tcpHeaderLength = TCPSegmentView.minimumHeaderLength + optionsLength
        let maximumPayload = Int(UInt16.max) - IPv4View.minimumHeaderLength - tcpHeaderLength
        guard payload.count <= maximumPayload else {
            throw .payloadTooLarge(length: payload.count, maximum: maximumPayload)
        }
        let length = tcpHeaderOffset + tcpHeaderLength + payload.count
        guard frame.count >= length else { throw .bufferTooSmall(needed: length, available: frame.count) }

        // Ethernet II.
        frame.setWireMAC(spec.destinationMAC, at: 0)
        frame.setWireMAC(spec.sourceMAC, at: 6)
        frame.setWireU16(EtherType.ipv4.rawValue, at: 12)

        // IPv4 (RFC 791 §3.1).
        let ip = EthernetView.headerLength
        let totalLength = IPv4View.minimumHeaderLength + tcpHeaderLength + payload.count
        frame.setWireU8(0x45, at: ip)  // version 4, IHL 5
        frame.setWireU8(0, at: ip + 1)  // DSCP 0, not ECN-capable
        frame.setWireU16(UInt16(totalLength), at: ip + 2)
        frame.setWireU16(spec.identification, at: ip + 4)
        frame.setWireU16(0x4000, at: ip + 6)  // DF, offset 0
        frame.setWireU8(spec.timeToLive, at: ip + 8)
        frame.setWireU8(IPProtocol.tcp.rawValue, at: ip + 9)
        frame.setWireU16(0, at: ip + 10)
        frame.setWireIPv4(spec.source, at: ip + 12)
        frame.setWireIPv4(spec.destination, at: ip + 16)
        frame.setWireU16(
            InternetChecksum.ipv4Header(frame.wireSlice(ip, IPv4View.minimumHeaderLength)), at: ip + 10)

        // TCP (RFC 9293 §3.1).
        let tcp = tcpHeaderOffset
        frame.setWireU16(spec.sourcePort, at: tcp)
        frame.setWireU16(spec.destinationPort, at: tcp + 2)
        frame.setWireU32(spec.sequenceNumber.rawValue, at: tcp + 4)
        frame.setWireU32(spec.acknowledgmentNumber.rawValue, at: tcp + 8)
        frame.setWireU8(UInt8(tcpHeaderLength / 4) << 4, at: tcp + 12)
        frame.setWireU8(spec.flags.rawValue, at: tcp + 13)
        frame.setWireU16(spec.window, at: tcp + 14)
        frame.setWireU16(0, at: tcp + 16)
        frame.setWireU16(spec.urgentPointer, at: tcp + 18)
        spec.options.encode(into: frame, at: tcp + TCPSegmentView.minimumHeaderLength)
        if let source = payload.baseAddress, payload.count > 0 {
            (frame.baseAddress! + tcp + tcpHeaderLength).copyMemory(from: source, byteCount: payload.count)
        }
        let checksum = InternetChecksum.tcp(
            source: spec.source, destination: spec.destination,
            segment: frame.wireSlice(tcp, tcpHeaderLength + payload.count))
        frame.setWireU16(checksum, at: tcp + 16)
        return length
    }

    /// Builds an Ethernet II + ARP (IPv4 over Ethernet, RFC 826) frame at the start of `frame`.
    ///
    /// - Returns: the frame length, `arpFrameLength`.
    public static func arp(
        operation: ARPOperation, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress,
        targetIP: IPv4Address, ethernetDestination: MACAddress, into frame: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        guard frame.count >= arpFrameLength else {
            throw .bufferTooSmall(needed: arpFrameLength, available: frame.count)
        }
        frame.setWireMAC(ethernetDestination, at: 0)
        frame.setWireMAC(senderMAC, at: 6)
        frame.setWireU16(EtherType.arp.rawValue, at: 12)
        let arp = EthernetView.headerLength
        frame.setWireU16(1, at: arp)  // hardware type: Ethernet
        frame.setWireU16(EtherType.ipv4.rawValue, at: arp + 2)
        frame.setWireU8(6, at: arp + 4)
        frame.setWireU8(4, at: arp + 5)
        frame.setWireU16(operation.rawValue, at: arp + 6)
        frame.setWireMAC(senderMAC, at: arp + 8)
        frame.setWireIPv4(senderIP, at: arp + 14)
        frame.setWireMAC(targetMAC, at: arp + 18)
        frame.setWireIPv4(targetIP, at: arp + 24)
        return arpFrameLength
    }

    /// A gratuitous ARP announcing `ip` at `mac`: an ARP request to broadcast with sender and
    /// target IP both `ip` and target MAC zero — RFC 5227 §2.3's "ARP Announcement", what
    /// `arping -U` sends. The resumed backup (or the daemon for it) sends this so switches and
    /// the clients' neighbour caches point at the path that now leads to it.
    public static func gratuitousARP(
        mac: MACAddress, ip: IPv4Address, into frame: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        try arp(
            operation: .request, senderMAC: mac, senderIP: ip, targetMAC: .zero, targetIP: ip,
            ethernetDestination: .broadcast, into: frame)
    }

    /// An ARP request asking who has `ip`, with sender address 0.0.0.0 (RFC 5227 §2.1.1's "ARP
    /// Probe"), from `mac` to `destination`. The owner of `ip` answers it to `mac` without
    /// learning anything from it: the relay's probe of a silent guest's data path.
    public static func arpProbe(
        from mac: MACAddress, for ip: IPv4Address, to destination: MACAddress, into frame: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        try arp(
            operation: .request, senderMAC: mac, senderIP: .any, targetMAC: .zero, targetIP: ip,
            ethernetDestination: destination, into: frame)
    }

    /// The reply to `request` saying that `request.targetIP` is at `mac`, sent back to the asker
    /// (RFC 826 "Packet Reception").
    public static func arpReply(
        to request: ARPView, mac: MACAddress, into frame: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        try arp(
            operation: .reply, senderMAC: mac, senderIP: request.targetIP, targetMAC: request.senderMAC,
            targetIP: request.senderIP, ethernetDestination: request.senderMAC, into: frame)
    }
}
