// Byte classes of the HTTP grammar (RFC 9110 §5.6, RFC 9112 §2–§7), as branch-light tests on one
// byte: the framer asks one of these for every head byte.

enum ASCII {
    static let tab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let comma: UInt8 = 0x2C
    static let dash: UInt8 = 0x2D
    static let zero: UInt8 = 0x30
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let backslash: UInt8 = 0x5C
    static let delete: UInt8 = 0x7F

    /// tchar (RFC 9110 §5.6.2): ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``, as a bitmap of 0...127.
    private static let tokenLow: UInt64 = 0x03FF_6CFA_0000_0000
    private static let tokenHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    @inline(__always)
    static func isToken(_ byte: UInt8) -> Bool {
        if byte < 64 { return tokenLow >> byte & 1 != 0 }
        if byte < 128 { return tokenHigh >> (byte &- 64) & 1 != 0 }
        return false
    }

    /// field-vchar, SP or HTAB (RFC 9110 §5.5): what a field value, a reason phrase or a chunk
    /// extension may hold. obs-text (0x80...0xFF) is allowed, as RFC 9110 asks recipients to.
    @inline(__always)
    static func isFieldByte(_ byte: UInt8) -> Bool {
        byte == tab || (byte >= space && byte != delete)
    }

    /// A request-target byte: anything visible (RFC 9112 §3.2 allows no whitespace inside it).
    @inline(__always)
    static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > space && byte != delete
    }

    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab
    }

    /// The value of a decimal digit, or nil.
    @inline(__always)
    static func digit(_ byte: UInt8) -> UInt8? {
        let value = byte &- zero
        return value < 10 ? value : nil
    }

    /// The value of a hex digit (HEXDIG, either case), or nil.
    @inline(__always)
    static func hexDigit(_ byte: UInt8) -> UInt8? {
        let decimal = byte &- zero
        if decimal < 10 { return decimal }
        let letter = (byte | 0x20) &- 0x61
        return letter < 6 ? letter &+ 10 : nil
    }

    /// ASCII letters to lower case, everything else unchanged (header names are
    /// case-insensitive, RFC 9110 §5.1).
    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- 0x41 < 26 ? byte | 0x20 : byte
    }
}

extension StaticString {
    /// The byte at `index` (no bounds check beyond the caller's; no allocation).
    @inline(__always)
    func byte(_ index: Int) -> UInt8 {
        utf8Start[index]
    }
}
