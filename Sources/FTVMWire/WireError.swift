/// Why a frame, or a request to build one, was refused.
///
/// Parsing distinguishes two failures. A frame that ends before a fixed-size header (Ethernet's
/// 14 bytes, IPv4's 20, ARP's 28, TCP's 20 inside the IP packet) is *too short*: the parsers
/// return `nil` and `FrameClass` reports `.truncated`. A length field that contradicts the others
/// or the frame is *illegal* and is thrown as a `WireError`. A tap and an AF_PACKET socket hand
/// over whole frames, so a length that points past the end is a lie, not a truncation.
///
/// What to do with either: drop the frame, count it, and never let it reach the connection log.
/// Parsing throws typed (`throws(WireError)`), so a refused frame costs no allocation.
public enum WireError: Error, Equatable, Hashable, Sendable {
    /// The IPv4 version nibble is not 4 (RFC 791 §3.1).
    case ipv4BadVersion(UInt8)
    /// IHL is below 5 words, the minimum header (RFC 791 §3.1).
    case ipv4HeaderLengthTooSmall(ihl: UInt8)
    /// IHL × 4 runs past the end of the frame.
    case ipv4HeaderBeyondFrame(headerLength: Int, available: Int)
    /// Total Length is smaller than the header it must contain.
    case ipv4TotalLengthBelowHeader(totalLength: Int, headerLength: Int)
    /// Total Length runs past the end of the frame (Ethernet padding may only make it shorter).
    case ipv4TotalLengthBeyondFrame(totalLength: Int, available: Int)
    /// Data Offset is below 5 words, the minimum TCP header (RFC 9293 §3.1).
    case tcpDataOffsetTooSmall(dataOffset: UInt8)
    /// Data Offset × 4 runs past the end of the IP packet.
    case tcpHeaderBeyondPacket(headerLength: Int, available: Int)
    /// A TCP option other than EOL/NOP has a length below 2, which cannot cover its own kind
    /// and length bytes (RFC 9293 §3.2); a stack would loop or misparse the rest.
    case tcpOptionLengthTooSmall(kind: UInt8, length: UInt8)
    /// A TCP option (or its length byte) runs past the end of the TCP header.
    /// `offset` is from the start of the TCP header.
    case tcpOptionBeyondHeader(kind: UInt8, offset: Int)
    /// A known option has a length its RFC does not allow: MSS 4 (RFC 9293), window scale 3
    /// (RFC 7323), SACK-permitted 2 and SACK 2 + 8n with 1 ≤ n ≤ 4 (RFC 2018), timestamps 10
    /// (RFC 7323).
    case tcpOptionBadLength(kind: UInt8, length: UInt8)
    /// A known option appears twice. Rewriting can only keep one copy consistent, and no real
    /// stack sends two, so the segment is refused rather than half-rewritten.
    case tcpOptionDuplicate(kind: UInt8)

    /// Building: the caller's buffer cannot hold the frame.
    case bufferTooSmall(needed: Int, available: Int)
    /// Building: the payload does not fit in one IPv4 packet (Total Length is 16 bits).
    case payloadTooLarge(length: Int, maximum: Int)
    /// Building: the requested options need more than the 40 bytes a TCP header can carry.
    case tcpOptionsTooLong(length: Int)
    /// Building: more SACK blocks than one option can carry (4, RFC 2018 §3).
    case tooManySACKBlocks
}
