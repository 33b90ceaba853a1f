/// One journal entry in journald's native protocol (systemd's "Native Journal Protocol"): the
/// datagram a client sends to `/run/systemd/journal/socket`.
///
/// Each field is `NAME=value\n`, except a value holding a newline, which is sent in the binary
/// form: `NAME\n`, the value's length as a 64-bit little-endian integer, the value, `\n`.
/// Names are upper-case letters, digits and '_', not starting with a digit or '_' ('_' marks
/// the fields journald itself adds and trusts), at most 64 characters.
public struct JournalEntry: Sendable, Equatable {
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: [UInt8]

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = Array(value.utf8)
        }
    }

    public var fields: [Field]

    public init(fields: [Field]) { self.fields = fields }

    /// The datagram.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        for field in fields {
            bytes += Array(field.name.utf8)
            if field.value.contains(UInt8(ascii: "\n")) {
                bytes.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(field.value.count).littleEndian) { bytes += $0 }
            } else {
                bytes.append(UInt8(ascii: "="))
            }
            bytes += field.value
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    /// A valid field name for `key` under `prefix` (`FTVM_` for the logger's metadata): upper
    /// case, every character outside A-Z 0-9 replaced by '_', cut to 64 characters.
    public static func fieldName(_ key: String, prefix: String) -> String {
        let body = key.uppercased().unicodeScalars.map { scalar -> Character in
            ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) ? Character(scalar) : "_"
        }
        return String((prefix + String(body)).prefix(64))
    }
}
