import CFTVMShim

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; RFC 3720 §B.4), as iSCSI, ext4 and
/// SCTP use it: initial value and final XOR 0xFFFFFFFF, so `checksum("123456789") == 0xE3069283`.
///
/// The log seals each record copy with it, and keeps a running CRC32C of the server's stream so a
/// replay can tell whether the backup regenerated the bytes the client already has; whoever does
/// that comparison computes the backup's side with this same function. Two implementations give
/// the same answers: SSE4.2's `crc32` instruction (several GB/s; in the C shim, so only that
/// function needs the instruction set) and slicing-by-8 in software (about 2 GB/s) for CPUs
/// without it and other architectures. Which one runs is chosen once, at first use
/// (`Implementation.active`); nothing allocates after that.
public enum CRC32C {
    /// The code that computes the checksum. Tests and `ftvm bench frames` call each one by name.
    public enum Implementation: String, Sendable, CaseIterable {
        /// SSE4.2's `crc32` instruction, 8 bytes an instruction (x86-64 only).
        case hardware
        /// Slicing-by-8 over eight 256-entry tables: any CPU.
        case software

        /// Whether this machine can run it.
        public var isAvailable: Bool {
            switch self {
            case .hardware: Self.hasHardware
            case .software: true
            }
        }

        /// The one `checksum(_:continuing:)` uses: the instruction where the CPU has it.
        public static let active: Implementation = hasHardware ? .hardware : .software

        private static let hasHardware = ftvm_crc32c_hardware_available() != 0
    }

    /// The checksum of `bytes`, continuing from `crc` (the checksum of everything before them; 0
    /// for a fresh start). `checksum(b, continuing: checksum(a)) == checksum(a + b)`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        checksum(bytes, continuing: crc, using: Implementation.active)
    }

    /// The same checksum computed by `implementation`, which must be available on this machine
    /// (`isAvailable`; the hardware one is an illegal instruction elsewhere).
    public static func checksum(
        _ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0, using implementation: Implementation
    ) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        switch implementation {
        case .hardware:
            #if arch(x86_64)
            precondition(implementation.isAvailable, "CRC32C: this CPU has no SSE4.2 crc32 instruction")
            return ftvm_crc32c_hardware(crc, base, bytes.count)
            #else
            preconditionFailure("CRC32C: the hardware implementation is for x86-64 only")
            #endif
        case .software:
            return softwareChecksum(base, count: bytes.count, continuing: crc)
        }
    }

    /// Slicing-by-8: eight bytes a step through the eight tables, then the tail a byte at a time.
    private static func softwareChecksum(_ base: UnsafeRawPointer, count: Int, continuing crc: UInt32) -> UInt32 {
        tables.withUnsafeBufferPointer { table in
            var state = ~crc
            var offset = 0
            while count - offset >= 8 {
                let word = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian ^ UInt64(state)
                state =
                    table[7 * 256 + Int(word & 0xFF)] ^ table[6 * 256 + Int((word >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((word >> 16) & 0xFF)] ^ table[4 * 256 + Int((word >> 24) & 0xFF)]
                    ^ table[3 * 256 + Int((word >> 32) & 0xFF)] ^ table[2 * 256 + Int((word >> 40) & 0xFF)]
                    ^ table[1 * 256 + Int((word >> 48) & 0xFF)] ^ table[Int(word >> 56)]
                offset += 8
            }
            while offset < count {
                let byte = base.load(fromByteOffset: offset, as: UInt8.self)
                state = table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8)
                offset += 1
            }
            return ~state
        }
    }

    /// The checksum of a byte array (convenience for tests and the read side).
    public static func checksum(
        _ bytes: [UInt8], continuing crc: UInt32 = 0, using implementation: Implementation = .active
    ) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc, using: implementation) }
    }

    static let polynomial: UInt32 = 0x82F6_3B78

    /// Eight 256-entry tables, back to back: table k advances the CRC over a byte followed by k zeros.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1 }
            tables[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(k - 1) * 256 + byte]
                tables[k * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()
}

/// Checksums of concatenations, without the bytes. CRC32C is linear over GF(2): with the
/// polynomial P, `checksum(a + b) = checksum(a) · x^(8·|b|) mod P  ⊕  checksum(b)`; the initial
/// value and the final XOR cancel out of that identity. A trimmed connection keeps one running
/// checksum of its whole server stream and takes the dropped prefix off it when a replay needs
/// the rest (`suffix`), so trimming costs one stored word, not a second pass over the bytes.
extension CRC32C {
    /// `checksum(a + b)` from `checksum(a)`, `checksum(b)` and `b`'s length.
    public static func combine(_ a: UInt32, _ b: UInt32, length: UInt64) -> UInt32 { shift(a, by: length) ^ b }

    /// `checksum(b)` from `checksum(a + b)`, `checksum(a)` and `b`'s length.
    public static func suffix(of whole: UInt32, prefix: UInt32, suffixLength: UInt64) -> UInt32 {
        whole ^ shift(prefix, by: suffixLength)
    }

    /// `crc · x^(8·count) mod P`: what `count` more zero bytes do to the linear part of a checksum.
    /// Square-and-multiply over the table of x^(8·2^k): at most 64 products of 32 steps each.
    static func shift(_ crc: UInt32, by count: UInt64) -> UInt32 {
        var result = crc
        var remaining = count
        var power = 0
        while remaining > 0 {
            if remaining & 1 == 1 { result = multiply(powersOfX[power], result) }
            remaining >>= 1
            power += 1
        }
        return result
    }

    /// The product of two polynomials mod P, in the reflected bit order the checksum uses (bit 31
    /// is the coefficient of x^0).
    static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var product: UInt32 = 0
        var multiplicand = b
        var bit: UInt32 = 1 << 31
        while bit != 0 {
            if a & bit != 0 { product ^= multiplicand }
            multiplicand = multiplicand & 1 == 1 ? (multiplicand >> 1) ^ polynomial : multiplicand >> 1
            bit >>= 1
        }
        return product
    }

    /// x^(8·2^k) mod P for k in 0..<64 (x^8 is bit 23 in the reflected order).
    static let powersOfX: [UInt32] = {
        var powers: [UInt32] = [1 << 23]
        for _ in 1..<64 { powers.append(multiply(powers[powers.count - 1], powers[powers.count - 1])) }
        return powers
    }()
}
