import FTVMWire
import SeededRandom
import XCTest

/// A deliberately naive Internet checksum — one 16-bit word at a time, straight from RFC 1071 —
/// so the module's fast 64-bit sum and its incremental updates are checked against something
/// that shares no code with them.
enum Reference {
    static func onesSum(_ bytes: [UInt8]) -> UInt32 {
        var sum: UInt32 = 0
        var index = 0
        while index < bytes.count {
            let high = UInt32(bytes[index]) << 8
            let low = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
            sum += high | low
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            index += 2
        }
        return sum
    }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        ~UInt16(onesSum(bytes))
    }

    /// The TCP checksum the frame should carry (IPv4 header at 14, checksum field zeroed).
    static func tcpChecksum(_ frame: [UInt8]) -> UInt16 {
        let ihl = Int(frame[14] & 0x0F) * 4
        let total = Int(frame[16]) << 8 | Int(frame[17])
        var segment = Array(frame[(14 + ihl)..<(14 + total)])
        segment[16] = 0
        segment[17] = 0
        let length = segment.count
        let pseudo = Array(frame[26..<34]) + [0, 6, UInt8(length >> 8), UInt8(length & 0xFF)]
        return checksum(pseudo + segment)
    }

    /// Whether the TCP checksum in the frame verifies (everything sums to 0xFFFF).
    static func tcpChecksumVerifies(_ frame: [UInt8]) -> Bool {
        let ihl = Int(frame[14] & 0x0F) * 4
        let total = Int(frame[16]) << 8 | Int(frame[17])
        let segment = Array(frame[(14 + ihl)..<(14 + total)])
        let length = segment.count
        let pseudo = Array(frame[26..<34]) + [0, 6, UInt8(length >> 8), UInt8(length & 0xFF)]
        return onesSum(pseudo + segment) == 0xFFFF
    }

    static func ipv4HeaderChecksum(_ frame: [UInt8]) -> UInt16 {
        let ihl = Int(frame[14] & 0x0F) * 4
        var header = Array(frame[14..<(14 + ihl)])
        header[10] = 0
        header[11] = 0
        return checksum(header)
    }

    static func u16(_ frame: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(frame[offset]) << 8 | UInt16(frame[offset + 1])
    }

    static func u32(_ frame: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(u16(frame, offset)) << 16 | UInt32(u16(frame, offset + 2))
    }
}

extension Array where Element == UInt8 {
    mutating func put16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(value >> 8)
        self[offset + 1] = UInt8(value & 0xFF)
    }

    mutating func put32(_ value: UInt32, at offset: Int) {
        put16(UInt16(value >> 16), at: offset)
        put16(UInt16(value & 0xFFFF), at: offset + 2)
    }
}

/// Classifies a copy of `bytes` and hands the result to `body` while the buffer is alive; returns
/// the (possibly rewritten) bytes.
@discardableResult
func withClassified(
    _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line, _ body: (inout FrameClass) throws -> Void
) rethrows -> [UInt8] {
    var copy = bytes
    try copy.withUnsafeMutableBytes { buffer in
        var frameClass = FrameClass.classify(buffer)
        try body(&frameClass)
    }
    return copy
}

/// Classifies a copy of `bytes`, expects a TCP segment, and hands it to `body`.
@discardableResult
func withSegment(
    _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line, _ body: (inout TCPSegmentView) throws -> Void
) rethrows -> [UInt8] {
    var copy = bytes
    try copy.withUnsafeMutableBytes { buffer in
        let frameClass = FrameClass.classify(buffer)
        guard case .ipv4TCP(var segment) = frameClass else {
            XCTFail("expected a TCP segment, got \(frameClass)", file: file, line: line)
            return
        }
        try body(&segment)
    }
    return copy
}

/// The class of a copy of `bytes`, reduced to something that outlives the buffer.
func outcome(_ bytes: [UInt8]) -> Outcome {
    var copy = bytes
    return copy.withUnsafeMutableBytes { buffer in
        switch FrameClass.classify(buffer) {
        case .arp: .arp
        case .ipv4TCP: .tcp
        case .ipv4Fragment: .fragment
        case .ipv4Other(let ipv4): .other(ipv4.protocolNumber.rawValue)
        case .nonIPv4(let type): .nonIPv4(type.rawValue)
        case .unsupported(let what): .unsupported(what)
        case .truncated(let layer): .truncated(layer)
        case .illegal(let error): .illegal(error)
        }
    }
}

enum Outcome: Equatable {
    case arp, tcp, fragment
    case other(UInt8)
    case nonIPv4(UInt16)
    case unsupported(UnsupportedFrame)
    case truncated(WireLayer)
    case illegal(WireError)
}
