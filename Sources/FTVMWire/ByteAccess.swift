// Big-endian field access on a frame buffer.
//
// Every read copies into a local through `loadUnaligned`, every write goes through `storeBytes`:
// fields in a frame sit at any alignment (a 14-byte Ethernet header puts IPv4 at offset 14), so
// a typed pointer cast would be undefined behaviour. Callers check bounds first; these helpers
// assume the range is inside the buffer.

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func wireU8(at offset: Int) -> UInt8 {
        self[offset]
    }

    @inline(__always)
    func wireU16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    func wireU32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func setWireU8(_ value: UInt8, at offset: Int) {
        self[offset] = value
    }

    @inline(__always)
    func setWireU16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    func setWireU32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inline(__always)
    func wireMAC(at offset: Int) -> MACAddress {
        let high = UInt64(wireU16(at: offset))
        let low = UInt64(wireU32(at: offset + 2))
        return MACAddress(rawValue: high << 32 | low)
    }

    @inline(__always)
    func setWireMAC(_ mac: MACAddress, at offset: Int) {
        setWireU16(UInt16(truncatingIfNeeded: mac.rawValue >> 32), at: offset)
        setWireU32(UInt32(truncatingIfNeeded: mac.rawValue), at: offset + 2)
    }

    @inline(__always)
    func wireIPv4(at offset: Int) -> IPv4Address {
        IPv4Address(rawValue: wireU32(at: offset))
    }

    @inline(__always)
    func setWireIPv4(_ address: IPv4Address, at offset: Int) {
        setWireU32(address.rawValue, at: offset)
    }

    /// The bytes `start..<start+count` as a read-only buffer (no copy).
    @inline(__always)
    func wireSlice(_ start: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[start..<(start + count)])
    }
}
