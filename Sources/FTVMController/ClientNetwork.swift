import FTVMSystem
import Foundation
import Logging

/// The clients' side: a network namespace the daemon creates, holding the uplink tap whose
/// other end is the relay. Nothing is ever put on the host's own interfaces. The tap is
/// persistent: a restarted daemon attaches to the same device, and clients' connections keep
/// their route meanwhile; deleting the namespace deletes it.
public final class ClientNetwork: Sendable {
    public let tap: TapDevice
    public let namespace: String

    /// Creates the namespace (if missing) and the tap inside it, and gives the tap the uplink
    /// address. On failure nothing it made is left behind.
    public init(config: PairConfig, logger: Logger) throws {
        let created = !FileManager.default.fileExists(atPath: config.namespacePath)
        if created { try HostCommand.run(["ip", "netns", "add", config.namespace]) }
        do {
            tap = try TapDevice(name: config.tapName, namespacePath: config.namespacePath, persistent: true)
            let inside = ["ip", "-n", config.namespace]
            try HostCommand.run(inside + ["link", "set", "lo", "up"])
            try HostCommand.run(
                inside + ["addr", "replace", "\(config.uplinkAddress)/\(config.prefixLength)", "dev", config.tapName])
            try HostCommand.run(inside + ["link", "set", config.tapName, "mtu", "\(config.mtu)", "up"])
        } catch {
            if created { _ = try? HostCommand.run(["ip", "netns", "del", config.namespace]) }
            throw error
        }
        namespace = config.namespace
        logger.info("client namespace ready", metadata: ["netns": "\(namespace)", "tap": "\(config.tapName)"])
    }

    /// Deletes the namespace (the tap goes with its fd and its namespace).
    public static func remove(config: PairConfig) {
        if FileManager.default.fileExists(atPath: config.namespacePath) {
            _ = try? HostCommand.run(["ip", "netns", "del", config.namespace])
        }
    }
}
