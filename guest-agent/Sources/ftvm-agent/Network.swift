import CFTVMShim
import FTVMAgentKit
import FTVMSystem
import Glibc
import SystemPackage

/// The guest's own IPv4 addresses, found in the kernel (getifaddrs) rather than in a kernel
/// parameter or a config file, so the same agent works whoever configured the network: the
/// initramfs's /init (`ftvm.ip=`), systemd-networkd, ifupdown.
enum Network {
    struct Address {
        var interface: String
        var octets: [UInt8]
        var text: String { octets.map(String.init).joined(separator: ".") }
    }

    /// Every IPv4 address on an interface other than loopback, in the kernel's order.
    static func addresses() -> [Address] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var found: [Address] = []
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else {
                continue
            }
            let octets = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { inet in
                withUnsafeBytes(of: inet.pointee.sin_addr.s_addr) { Array($0) }  // network order
            }
            guard octets[0] != 127 else { continue }
            found.append(Address(interface: String(cString: current.pointee.ifa_name), octets: octets))
        }
        return found
    }

    /// Broadcasts a gratuitous ARP request for every address, twice (one may be lost while the
    /// host's relay switches over). Returns what was announced, for the command's reply.
    static func announce() -> (Int32, String) {
        let all = addresses()
        guard !all.isEmpty else { return (0, "no IPv4 address to announce") }
        var announced: [String] = []
        var failures: [String] = []
        for address in all {
            guard let text = try? SmallFile.read("/sys/class/net/\(address.interface)/address"),
                let mac = GratuitousARP.parseMAC(text.trimmed)
            else {
                failures.append("\(address.interface): no MAC address")
                continue
            }
            let frame = GratuitousARP.frame(mac: mac, address: address.octets)
            let result = (0..<2).map { _ in
                frame.withUnsafeBytes { ftvm_send_frame(address.interface, $0.baseAddress, Int32($0.count)) }
            }
            if let error = result.first(where: { $0 < 0 }) {
                failures.append("\(address.interface): \(Errno(rawValue: -error))")
            } else {
                announced.append("\(address.text) on \(address.interface)")
            }
        }
        let text =
            (announced.isEmpty ? "" : "announced " + announced.joined(separator: ", "))
            + (failures.isEmpty ? "" : "; failed: " + failures.joined(separator: ", "))
        return (failures.isEmpty ? 0 : -1, text)
    }

    /// Takes down every interface that carries an IPv4 address (the network-stall fault).
    static func takeDown() -> (Int32, String) {
        var names: [String] = []
        for address in addresses() where !names.contains(address.interface) { names.append(address.interface) }
        guard !names.isEmpty else { return (-1, "no interface with an IPv4 address") }
        for name in names {
            let result = ftvm_link_set_down(name)
            if result < 0 { return (-1, "cannot take \(name) down: \(Errno(rawValue: -result))") }
        }
        return (0, "took \(names.joined(separator: ", ")) down")
    }
}
