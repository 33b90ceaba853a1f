/// Everything that can go wrong in the virtualization layer: talking to libvirt, building or
/// reading domain XML, and choosing an accelerator.
///
/// Each message says what is wrong and what to do about it, because these errors end up in
/// `ftvm` output and daemon logs read by an operator, not by the author of the code.
public enum VirtError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libvirtd's socket could not be reached: the daemon is not running (or listens elsewhere).
    case libvirtdUnreachable(uri: String, detail: String)
    /// libvirt refused the connection for another reason (bad URI, authentication, driver).
    case connectionFailed(uri: String, detail: String)
    /// An established connection died (libvirtd exited or the keepalive timed out).
    case connectionLost(operation: String, detail: String)
    /// No domain with this name (or UUID) is defined.
    case domainNotFound(String)
    /// The call is not valid in the domain's current state (e.g. suspending a shut-off domain).
    case operationInvalid(operation: String, domain: String, detail: String)
    /// libvirt rejected a domain definition (XML syntax, schema, or an unsupported device).
    case domainXMLRejected(operation: String, detail: String)
    /// Any other libvirt failure; carries libvirt's own message and error code.
    case libvirt(operation: String, code: Int32, detail: String)
    /// A ``DomainSpec`` or ``GuestMetadata`` cannot be turned into a valid definition.
    case invalidSpec(String)
    /// Domain XML (from libvirt or a file) could not be parsed or lacks what ftvm needs.
    case malformedXML(String)
    /// `FTVM_ACCEL` (or another override) holds something other than kvm, qemu or auto.
    case invalidAccelerator(String)
    /// libvirt's event loop could not be set up, so no lifecycle events or keepalives.
    case eventLoopUnavailable(String)
    /// A libvirt network ftvm cannot plug a pair's uplink into, and why.
    case networkUnusable(String, String)
    /// An operator's domain that ftvm cannot make a pair from, with every reason found.
    case cannotProtect(domain: String, reasons: [String])

    public var description: String {
        switch self {
        case let .libvirtdUnreachable(uri, detail):
            return "libvirtd is not running (\(uri) unreachable): start it with `bash scripts/setup.sh` "
                + "or `libvirtd --daemon` [libvirt: \(detail)]"
        case let .connectionFailed(uri, detail):
            return "cannot connect to libvirt at \(uri): \(detail); check the URI and that you run as root"
        case let .connectionLost(operation, detail):
            return "lost the connection to libvirtd during \(operation): \(detail); restart libvirtd "
                + "(`bash scripts/setup.sh`) and reconnect — running guests are not affected"
        case let .domainNotFound(name):
            return "no libvirt domain named '\(name)': list domains with `virsh -c qemu:///system list --all`"
        case let .operationInvalid(operation, domain, detail):
            return "cannot \(operation) domain '\(domain)' in its current state: \(detail); "
                + "check it with `virsh -c qemu:///system domstate --reason \(domain)`"
        case let .domainXMLRejected(operation, detail):
            return "libvirt rejected the domain XML in \(operation): \(detail); this is a bug in the "
                + "generated definition or an unsupported libvirt/QEMU version"
        case let .libvirt(operation, code, detail):
            return "libvirt \(operation) failed (error \(code)): \(detail)"
        case let .invalidSpec(reason):
            return "invalid domain spec: \(reason)"
        case let .malformedXML(reason):
            return "malformed domain XML: \(reason)"
        case let .invalidAccelerator(value):
            return "invalid accelerator '\(value)' in FTVM_ACCEL: use kvm, qemu (TCG) or auto"
        case let .networkUnusable(network, why):
            return "cannot use libvirt network '\(network)': \(why)"
        case let .cannotProtect(domain, reasons):
            return "ftvm cannot protect domain '\(domain)' (nothing was changed):\n"
                + reasons.map { "  - \($0)" }.joined(separator: "\n")
        case let .eventLoopUnavailable(reason):
            return "cannot start libvirt's event loop: \(reason); lifecycle events and keepalives "
                + "will not work"
        }
    }
}
