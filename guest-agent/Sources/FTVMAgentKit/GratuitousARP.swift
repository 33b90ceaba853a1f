/// The gratuitous ARP request a resumed guest broadcasts for each of its IPv4 addresses, so the
/// host's relay, bridges and clients learn at once where the address lives (RFC 5227 §3: an ARP
/// announcement, sender and target protocol address both the guest's).
public enum GratuitousARP {
    public static let frameLength = 42

    /// The whole Ethernet frame: broadcast destination, `mac` as source, EtherType 0x0806, then
    /// the 28-byte ARP request. `mac` is 6 bytes, `address` 4 (network order).
    public static func frame(mac: [UInt8], address: [UInt8]) -> [UInt8] {
        precondition(mac.count == 6 && address.count == 4, "a MAC is 6 bytes and an IPv4 address 4")
        var frame: [UInt8] = []
        frame.reserveCapacity(frameLength)
        frame += [UInt8](repeating: 0xff, count: 6)  // destination: broadcast
        frame += mac  // source
        frame += [0x08, 0x06]  // EtherType ARP
        frame += [0x00, 0x01]  // hardware type Ethernet
        frame += [0x08, 0x00]  // protocol type IPv4
        frame += [6, 4]  // address lengths
        frame += [0x00, 0x01]  // operation: request
        frame += mac + address  // sender
        frame += [UInt8](repeating: 0, count: 6) + address  // target: unknown MAC, own address
        return frame
    }

    /// "52:54:00:12:34:56" (as sysfs prints `address`) as 6 bytes, or nil.
    public static func parseMAC(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":")
        guard parts.count == 6 else { return nil }
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        return bytes.count == 6 ? bytes : nil
    }
}
