import FTVMSystem
import Foundation
import Logging

/// The clients' side: the uplink tap whose other end is the relay. Either in a network namespace
/// the daemon creates for the pair's clients (ftvm's own images), or, for a protected operator
/// domain, plugged into the bridge its NIC was on, with no address: the clients are wherever
/// that network reaches. Nothing is ever put on the host's own interfaces. The tap is
/// persistent: a restarted daemon attaches to the same device, and clients' connections keep
/// their route meanwhile.
public final class ClientNetwork: Sendable {
    public let tap: TapDevice
    /// Where the clients are: the pair's own namespace, or the bridge the uplink is on.
    private enum Clients {
        case namespace(String)
        case bridge(String)
    }
    private let clients: Clients
    /// The clients' namespace, when the pair has its own.
    public var namespace: String? { if case .namespace(let name) = clients { name } else { nil } }
    /// Where the clients are, as `ftvm status` says it: `netns NAME` or `bridge NAME`.
    public var location: String {
        switch clients {
        case .namespace(let name): "netns \(name)"
        case .bridge(let name): "bridge \(name)"
        }
    }

    /// Creates the namespace (if missing) and the tap inside it with the uplink address, or the
    /// tap on `bridge`. On failure nothing it made is left behind.
    public init(config: PairConfig, bridge: String?, logger: Logger) throws {
        if let bridge {
            tap = try TapDevice(name: config.tapName, namespacePath: nil, persistent: true, offload: true)
            do {
                try HostCommand.run(["ip", "link", "set", config.tapName, "master", bridge])
                try HostCommand.run(["ip", "link", "set", config.tapName, "mtu", "\(config.mtu)", "up"])
            } catch {
                _ = try? HostCommand.run(["ip", "link", "del", config.tapName])
                throw error
            }
            clients = .bridge(bridge)
            logger.info(
                "uplink on the operator's bridge", metadata: ["bridge": "\(bridge)", "tap": "\(config.tapName)"])
            return
        }
        let created = !FileManager.default.fileExists(atPath: config.namespacePath)
        if created { try HostCommand.run(["ip", "netns", "add", config.namespace]) }
        do {
            tap = try TapDevice(
                name: config.tapName, namespacePath: config.namespacePath, persistent: true, offload: true)
            let inside = ["ip", "-n", config.namespace]
            try HostCommand.run(inside + ["link", "set", "lo", "up"])
            try HostCommand.run(
                inside + ["addr", "replace", "\(config.uplinkAddress)/\(config.prefixLength)", "dev", config.tapName])
            try HostCommand.run(inside + ["link", "set", config.tapName, "mtu", "\(config.mtu)", "up"])
        } catch {
            if created { _ = try? HostCommand.run(["ip", "netns", "del", config.namespace]) }
            throw error
        }
        clients = .namespace(config.namespace)
        logger.info("client namespace ready", metadata: ["netns": "\(config.namespace)", "tap": "\(config.tapName)"])
    }

    /// The MTU of a host bridge: the relay's uplink takes it, as the operator's NIC would have.
    public static func mtu(ofBridge bridge: String) throws -> Int {
        let path = "/sys/class/net/\(bridge)/mtu"
        guard FileManager.default.fileExists(atPath: "/sys/class/net/\(bridge)/bridge"),
            let text = try? String(contentsOfFile: path, encoding: .utf8),
            let mtu = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw ConfigError.noBridge(bridge)
        }
        return mtu
    }

    /// Deletes the namespace (the tap goes with its fd and its namespace) and a bridged tap.
    public static func remove(config: PairConfig) {
        if FileManager.default.fileExists(atPath: config.namespacePath) {
            _ = try? HostCommand.run(["ip", "netns", "del", config.namespace])
        }
        if FileManager.default.fileExists(atPath: "/sys/class/net/\(config.tapName)") {
            _ = try? HostCommand.run(["ip", "link", "del", config.tapName])
        }
    }
}
