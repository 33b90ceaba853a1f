/// The one kind of nondeterminism replay forgives: the value of an HTTP `Date:` header.
///
/// A service that answers a replayed request a second later sends the same response with another
/// `Date:` (RFC 9110 §6.6.1), so a byte-exact comparison would reset every connection whose
/// response head the client already has. Both checksums a replay compares — the server stream as
/// the client received it, and the new guest's regenerated stream — are therefore taken over the
/// payload with the value of a `Date:` header masked (every byte up to the CRLF set to `-`).
///
/// The masking is length-preserving: a value of another length changes the stream's length and
/// the checksums still differ, so the connection is reset. The client keeps the head it already
/// had; only the masked value of that header can differ from what the new guest would have sent,
/// and it is bytes the client already has. Only a head at the start of a segment is looked at
/// (where a server's write of a response puts it): a head elsewhere is compared unmasked, so at
/// worst such a connection is reset, never corrupted.
enum HTTPDateMask {
    private static let responseStart: [UInt8] = Array("HTTP/1.".utf8)
    private static let header: [UInt8] = Array("\r\ndate:".utf8)

    /// `payload` itself when it holds nothing to mask; otherwise a masked copy in `scratch`.
    static func masked(_ payload: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) -> UnsafeRawBufferPointer {
        guard payload.count >= responseStart.count, payload.count <= scratch.count,
            responseStart.indices.allSatisfy({ payload[$0] == responseStart[$0] }),
            let value = dateValue(in: payload)
        else { return payload }
        scratch.baseAddress!.copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        for index in value { scratch[index] = UInt8(ascii: "-") }
        return UnsafeRawBufferPointer(rebasing: scratch[..<payload.count])
    }

    /// The byte range of the `Date:` value in the head at the start of `payload` (header names
    /// are case-insensitive), or nil.
    static func dateValue(in payload: UnsafeRawBufferPointer) -> Range<Int>? {
        var index = 0
        while index + header.count <= payload.count {
            if payload[index] == 13, index + 3 < payload.count, payload[index + 1] == 10, payload[index + 2] == 13,
                payload[index + 3] == 10
            {
                return nil  // the end of the head
            }
            if matchesHeader(payload, at: index) {
                var start = index + header.count
                while start < payload.count, payload[start] == UInt8(ascii: " ") { start += 1 }
                var end = start
                while end < payload.count, payload[end] != 13 { end += 1 }
                return start..<end
            }
            index += 1
        }
        return nil
    }

    private static func matchesHeader(_ payload: UnsafeRawBufferPointer, at index: Int) -> Bool {
        for offset in header.indices {
            var byte = payload[index + offset]
            if byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z") { byte += 32 }
            if byte != header[offset] { return false }
        }
        return true
    }
}
