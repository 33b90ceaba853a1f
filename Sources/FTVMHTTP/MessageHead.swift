/// One complete HTTP/1.x message head (RFC 9112 §2.1), read whole: its start line and fields.
///
/// The framer (`MessageFramer`) follows heads byte by byte as segments pass and keeps none of
/// them; this type reads a head the relay kept, when it needs what the head says (a range
/// resume's validators). Strict: lines end in CRLF, no obs-fold, field names are tokens. A head it
/// cannot read is nil, and a caller that asked for it does without.
struct MessageHead {
    /// The start line, without its CRLF.
    var startLine: [UInt8]
    /// Field names lowercased, values without their surrounding whitespace, in order.
    var fields: [(name: String, value: [UInt8])]
    /// The head's length, its final empty line included.
    var length: Int

    /// The longest head read: a head that has not ended by then is not read.
    static let maximumLength = 16 << 10

    /// Where the empty line that ends a head in `bytes` ends, or nil when it has not arrived.
    static func end(in bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = 3
        while index < bytes.count {
            if bytes[index] == ASCII.lf, bytes[index - 1] == ASCII.cr, bytes[index - 2] == ASCII.lf,
                bytes[index - 3] == ASCII.cr
            {
                return index + 1
            }
            index += 1
        }
        return nil
    }

    /// The head at the start of `bytes`, or nil when it is incomplete, malformed or too long.
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard
            let length = Self.end(in: UnsafeRawBufferPointer(rebasing: bytes[..<min(bytes.count, Self.maximumLength)]))
        else { return nil }
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = 0
        var index = 0
        while index < length - 2 {
            if bytes[index] == ASCII.cr {
                guard bytes[index + 1] == ASCII.lf else { return nil }
                lines.append(ArraySlice(UnsafeRawBufferPointer(rebasing: bytes[lineStart..<index])))
                index += 2
                lineStart = index
            } else {
                guard bytes[index] != ASCII.lf else { return nil }
                index += 1
            }
        }
        guard let first = lines.first, !first.isEmpty else { return nil }
        startLine = Array(first)
        fields = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ASCII.colon), colon > line.startIndex,
                line[line.startIndex..<colon].allSatisfy(ASCII.isToken),
                line[(colon + 1)...].allSatisfy(ASCII.isFieldByte)
            else { return nil }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).lowercased()
            let value = line[(colon + 1)...].drop(while: ASCII.isWhitespace)
            let trimmed = value.reversed().drop(while: ASCII.isWhitespace).reversed()
            fields.append((name, Array(trimmed)))
        }
        self.length = length
    }

    /// The values of every field named `name` (lowercase).
    func values(_ name: String) -> [[UInt8]] {
        fields.filter { $0.name == name }.map(\.value)
    }

    /// The one value of `name`; nil when it is absent or repeated.
    func single(_ name: String) -> [UInt8]? {
        let values = values(name)
        return values.count == 1 ? values[0] : nil
    }

    /// Whether a comma-separated list field holds `token` (case-insensitive) in any of its lines.
    func list(_ name: String, contains token: String) -> Bool {
        values(name).contains { value in
            value.split(separator: ASCII.comma).contains { element in
                let trimmed = element.drop(while: ASCII.isWhitespace).reversed().drop(while: ASCII.isWhitespace)
                return String(decoding: trimmed.reversed(), as: UTF8.self).lowercased() == token
            }
        }
    }

    /// A response head's status code, when its start line is `HTTP/1.0 NNN …` or `HTTP/1.1 NNN …`.
    var status: Int? {
        guard startLine.count >= 12, startLine.starts(with: Array("HTTP/1.".utf8)),
            startLine[7] == ASCII.zero || startLine[7] == ASCII.zero + 1, startLine[8] == ASCII.space,
            startLine.count == 12 || startLine[12] == ASCII.space
        else { return nil }
        return Self.decimal(startLine[9..<12]).flatMap { $0 < 1000 ? Int($0) : nil }
    }

    /// A decimal number of at most 18 digits (no sign, no whitespace), or nil.
    static func decimal<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard let digit = ASCII.digit(byte) else { return nil }
            value = value * 10 + UInt64(digit)
        }
        return value
    }
}
