import FTVMSystem
import Foundation
import SystemPackage

/// Tells systemd about the service's state through `$NOTIFY_SOCKET` (sd_notify(3)'s protocol,
/// spoken directly: one datagram of newline-separated `VARIABLE=value` assignments; no
/// libsystemd). A unit with `Type=notify` counts as started once `READY=1` arrives.
public final class SystemdNotifier: Sendable {
    /// The socket systemd listens on: a path, or '@name' in the abstract namespace.
    public let address: String
    private let socket: UnixDatagram

    /// The notifier `$NOTIFY_SOCKET` names; nil when it is unset or empty (not started by
    /// systemd as a notify service).
    public convenience init?(environment: [String: String] = ProcessInfo.processInfo.environment) throws(Errno) {
        guard let address = environment["NOTIFY_SOCKET"], !address.isEmpty else { return nil }
        try self.init(address: address)
    }

    public init(address: String) throws(Errno) {
        self.address = address
        socket = try UnixDatagram()
    }

    /// Sends the assignments as one datagram, in order. A newline inside a value would start a
    /// new assignment, so it becomes a space.
    public func send(_ assignments: KeyValuePairs<String, String>) throws(Errno) {
        try socket.send(Self.datagram(assignments), to: address)
    }

    /// The service is up: `READY=1` with a status line for `systemctl status`.
    public func ready(status: String) throws(Errno) { try send(["READY": "1", "STATUS": status]) }

    /// A new status line.
    public func status(_ status: String) throws(Errno) { try send(["STATUS": status]) }

    /// The service is shutting down (systemd shows "deactivating" until it exits).
    public func stopping(status: String) throws(Errno) { try send(["STOPPING": "1", "STATUS": status]) }

    /// The datagram for `assignments`: `NAME=value\n` each.
    public static func datagram(_ assignments: KeyValuePairs<String, String>) -> [UInt8] {
        var bytes: [UInt8] = []
        for (name, value) in assignments {
            bytes += Array(name.utf8) + [UInt8(ascii: "=")]
            bytes += value.utf8.map { $0 == UInt8(ascii: "\n") ? UInt8(ascii: " ") : $0 }
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }
}
