import FTVMSystem
import FTVMVirt
import Foundation

/// The host side of the guests' links (`GuestLink`): one persistent tap per guest in the host's
/// namespace, which libvirt hands to the guest's QEMU and the relay reads through an AF_PACKET
/// socket. The tap has no address, and the host's own stack neither forwards what arrives on it
/// (IPv4 forwarding off there) nor answers it (no ARP replies, IPv6 disabled), so a guest's
/// frames go nowhere but the relay. Its alias names the pair and generation, so a pair's taps
/// are found and removed without a daemon (`ftvm down`, a test's cleanup).
enum GuestTaps {
    /// The guest side's MTU: as large as a tap takes (65535 less its Ethernet header), so no
    /// frame the guest can send is refused.
    static let mtu = 65521

    static func alias(pair: String) -> String { "ftvm pair \(pair) " }

    /// Creates a fresh link for guest `generation` of `pair`. On failure nothing is left.
    static func create(pair: String, generation: Int) throws -> GuestLink {
        let taken = Set((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
        guard
            let link = (0..<64).lazy.map({ _ in GuestLink(id: UInt16.random(in: 1...UInt16.max)) })
                .first(where: { !taken.contains($0.tap) })
        else {
            throw PairError.noFreeLink
        }
        _ = try TapDevice(name: link.tap, namespacePath: nil, persistent: true)
        do {
            try setting("ipv4/conf/\(link.tap)/forwarding", to: "0")
            try setting("ipv4/conf/\(link.tap)/arp_ignore", to: "8")
            if FileManager.default.fileExists(atPath: "/proc/sys/net/ipv6/conf/\(link.tap)") {
                try setting("ipv6/conf/\(link.tap)/disable_ipv6", to: "1")
            }
            try HostCommand.run([
                "ip", "link", "set", "dev", link.tap, "mtu", "\(mtu)", "alias",
                alias(pair: pair) + "generation \(generation)",
                "up",
            ])
        } catch {
            remove(link)
            throw error
        }
        return link
    }

    private static func setting(_ path: String, to value: String) throws {
        try Data(value.utf8).write(to: URL(fileURLWithPath: "/proc/sys/net/" + path))
    }

    static func remove(_ link: GuestLink) {
        if FileManager.default.fileExists(atPath: "/sys/class/net/\(link.tap)") {
            _ = try? HostCommand.run(["ip", "link", "del", "dev", link.tap])
        }
    }

    /// Removes every link tap of `pair`.
    static func removeAll(pair: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
        for name in names {
            guard let link = GuestLink(tap: name),
                let alias = try? String(contentsOfFile: "/sys/class/net/\(name)/ifalias", encoding: .utf8),
                alias.hasPrefix(Self.alias(pair: pair))
            else { continue }
            remove(link)
        }
    }
}
