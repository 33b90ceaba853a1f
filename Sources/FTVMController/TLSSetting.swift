import FTVMWire
import Foundation

/// HTTPS terminated on the host (docs/https.md): the public TLS ports and where each goes in the
/// guest, the operator's certificate chain and key, and the address the terminator's back side
/// speaks plain HTTP to the guest from.
public struct TLSSetting: Sendable, Equatable, Codable {
    public struct PortMap: Sendable, Equatable, Codable, CustomStringConvertible {
        /// The port clients reach with TLS, at the service's address.
        public var publicPort: UInt16
        /// The port the guest serves plain HTTP on.
        public var guestPort: UInt16
        public var description: String { "\(publicPort):\(guestPort)" }
    }

    public var ports: [PortMap]
    /// A PEM certificate chain (the server's first) and its PEM private key; absolute paths.
    public var certificatePath: String
    public var keyPath: String
    /// The back side's address: a free host of the service's subnet (default: its last host).
    public var backAddress: String

    /// `443:8081,8443:8080` (a list as the command line and the file give it), or what is wrong.
    static func portMaps(parsing text: String) -> Result<[PortMap], ConfigProblem> {
        var maps: [PortMap] = []
        for field in text.split(separator: ",") {
            let parts = field.trimmingCharacters(in: .whitespaces).split(
                separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let public_ = UInt16(parts[0]), let guest = UInt16(parts[1]), public_ > 0, guest > 0
            else {
                return .failure(ConfigProblem("'\(field)' is not PUBLIC:GUEST, two ports 1-65535 like 443:8081"))
            }
            if maps.contains(where: { $0.publicPort == public_ }) {
                return .failure(ConfigProblem("public port \(public_) is given twice"))
            }
            maps.append(PortMap(publicPort: public_, guestPort: guest))
        }
        return maps.isEmpty ? .failure(ConfigProblem("no PUBLIC:GUEST port given (like 443:8081)")) : .success(maps)
    }

    /// The port maps `ftvm status` reports (`tlsPorts`); nil when the text is not a list of them.
    public static func portMaps(reported text: String) -> [PortMap]? {
        try? portMaps(parsing: text).get()
    }

    /// What is wrong with a value, for `ConfigError.invalidSetting`.
    struct ConfigProblem: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The last host of the service's subnet (10.77.0.254 for 10.77.0.2/24).
    static func defaultBackAddress(service: String, prefixLength: Int) -> String? {
        guard let address = IPv4Address(service), prefixLength <= 30 else { return nil }
        let host: UInt32 = prefixLength == 0 ? ~0 : ~(~0 << (32 - UInt32(prefixLength)))
        return IPv4Address(rawValue: (address.rawValue & ~host) | (host - 1)).description
    }

    /// The back side's MAC: the service's with one locally administered bit flipped, so it is
    /// unicast, distinct from the service's and the same after a restart.
    static func backMAC(service: MACAddress) -> MACAddress {
        MACAddress(rawValue: (service.rawValue ^ 0x0400_0000_0000) | 0x0200_0000_0000)
    }
}
