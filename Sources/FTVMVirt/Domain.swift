internal import CLibvirt
import Glibc

/// One libvirt domain, owning its `virDomainPtr` (freed in `deinit`).
///
/// The handle stays valid after the domain stops or is undefined; calls then fail with
/// ``VirtError/domainNotFound(_:)`` or ``VirtError/operationInvalid(operation:domain:detail:)``.
/// Thread-safe for the same reason as ``LibvirtConnection``.
public final class Domain: @unchecked Sendable {
    public let connection: LibvirtConnection
    private let handle: OpaquePointer
    /// The name at lookup time (ftvm never renames domains).
    public let name: String
    public let uuid: String

    /// Takes ownership of `handle` (also on failure).
    init(connection: LibvirtConnection, handle: OpaquePointer) throws(VirtError) {
        self.connection = connection
        self.handle = handle
        guard let name = virDomainGetName(handle) else {
            let error = connection.failure(operation: "read domain name")
            virDomainFree(handle)
            throw error
        }
        self.name = String(cString: name)
        var buffer = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        guard virDomainGetUUIDString(handle, &buffer) == 0 else {
            let error = connection.failure(operation: "read domain uuid", domain: self.name)
            virDomainFree(handle)
            throw error
        }
        self.uuid = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { virDomainFree(handle) }

    // MARK: - State

    /// Current state and reason (`virDomainGetState`).
    public func state() throws(VirtError) -> DomainState {
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(handle, &state, &reason, 0) == 0 else { throw failure("read state of") }
        return DomainState(state: state, reason: reason)
    }

    /// Whether a QEMU process exists for the domain.
    public func isActive() throws(VirtError) -> Bool {
        let result = virDomainIsActive(handle)
        guard result >= 0 else { throw failure("check activity of") }
        return result == 1
    }

    /// Whether the definition outlives the QEMU process (false for transient domains or on error).
    public var isPersistent: Bool { virDomainIsPersistent(handle) == 1 }

    // MARK: - Lifecycle

    /// Boots the defined domain (`virDomainCreate`). Returns once QEMU runs the guest; emits
    /// `resumed(.unpaused)` then `started(.booted)`.
    ///
    /// Fails when, among others, the kernel/initrd is not readable by `libvirt-qemu`, the guest's
    /// link tap does not exist, the console log directory is missing, or the shmem file exists but is
    /// not writable by `libvirt-qemu`. Takes ~0.3 s under TCG — unless `/dev/kvm` is mode 0600
    /// root:root, which makes libvirt 9.0 re-probe QEMU's capabilities on every call (seconds to
    /// minutes); give it Debian's usual root:kvm 0660.
    public func start() throws(VirtError) {
        guard virDomainCreate(handle) == 0 else { throw failure("start") }
    }

    /// Pauses the vCPUs (`virDomainSuspend`); immediate, and the domain keeps its memory. This is
    /// how a backup waits, and the fastest way to fence a suspect primary.
    public func suspend() throws(VirtError) {
        guard virDomainSuspend(handle) == 0 else { throw failure("suspend") }
    }

    /// Asks the guest to shut down (`virDomainShutdown`: an ACPI power button press by default);
    /// returns at once, and the guest may ignore it.
    public func shutdown() throws(VirtError) {
        guard virDomainShutdown(handle) == 0 else { throw failure("shutdown") }
    }

    /// Continues paused vCPUs (`virDomainResume`).
    public func resume() throws(VirtError) {
        guard virDomainResume(handle) == 0 else { throw failure("resume") }
    }

    /// Kills the QEMU process (`virDomainDestroy`: SIGTERM, then SIGKILL if QEMU lingers). The
    /// definition stays. Suspend first when the guest must stop executing *now*.
    public func destroy() throws(VirtError) {
        guard virDomainDestroy(handle) == 0 else { throw failure("destroy") }
    }

    /// Removes the definition, along with any managed save image, snapshot/checkpoint metadata
    /// and NVRAM file libvirt keeps for it. A running domain keeps running as a transient one, so
    /// destroy it first. Leaves `/dev/shm/<shmem>` and the console log in place.
    public func undefine() throws(VirtError) {
        let flags =
            VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.rawValue | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA.rawValue
            | VIR_DOMAIN_UNDEFINE_NVRAM.rawValue | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA.rawValue
        if virDomainUndefineFlags(handle, UInt32(flags)) == 0 { return }
        let failure = LibvirtFailure.last()
        // Drivers without NVRAM or checkpoint support (the mock test:/// driver) reject those flags
        // as invalid; they have none of those things to remove, so a plain undefine is equivalent.
        guard failure.has(VIR_ERR_INVALID_ARG), virDomainUndefineFlags(handle, 0) == 0 else {
            throw VirtError.fromLibvirt(failure, operation: "undefine", domain: name, connection: connection.handle)
        }
    }

    // MARK: - Definition

    /// The domain XML (`virDomainGetXMLDesc`). `inactive` returns the persistent definition,
    /// which differs from the live one after a redefinition or a config-only metadata change.
    public func xmlDescription(inactive: Bool = false) throws(VirtError) -> String {
        let flags = inactive ? UInt32(VIR_DOMAIN_XML_INACTIVE.rawValue) : 0
        guard let xml = virDomainGetXMLDesc(handle, flags) else { throw failure("read XML of") }
        defer { free(xml) }
        return String(cString: xml)
    }

    /// The definition read back as a ``DomainSpec`` (persistent definition).
    public func spec() throws(VirtError) -> DomainSpec {
        try DomainXML.parse(try xmlDescription(inactive: true))
    }

    // MARK: - Metadata

    /// ftvm's record for this domain, or `nil` when it has none (not an ftvm guest).
    ///
    /// Reads the live definition of a running domain and the persistent one otherwise.
    public func guestMetadata() throws(VirtError) -> GuestMetadata? {
        let flags = UInt32(VIR_DOMAIN_AFFECT_CURRENT.rawValue)
        let type = Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue)
        guard let xml = virDomainGetMetadata(handle, type, GuestMetadata.namespaceURI, flags) else {
            let failure = LibvirtFailure.last()
            if failure.has(VIR_ERR_NO_DOMAIN_METADATA) { return nil }
            throw VirtError.fromLibvirt(
                failure, operation: "read metadata of", domain: name, connection: connection.handle)
        }
        defer { free(xml) }
        return try GuestMetadata(xml: String(cString: xml))
    }

    /// Replaces ftvm's record (`virDomainSetMetadata`, key `ftvm`).
    ///
    /// Writes the persistent definition always and the live one too when the domain is active —
    /// a config-only write to a running domain would leave `guestMetadata()` showing the old
    /// record until the next boot, and a live-only write on a shut-off domain is refused.
    public func setGuestMetadata(_ metadata: GuestMetadata) throws(VirtError) {
        let xml = try metadata.xml()
        let type = Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue)
        let config = VIR_DOMAIN_AFFECT_CONFIG.rawValue
        let live = VIR_DOMAIN_AFFECT_LIVE.rawValue
        let active = try isActive()
        var flags = active ? config | live : config
        if virDomainSetMetadata(
            handle, type, xml, GuestMetadata.namespacePrefix, GuestMetadata.namespaceURI,
            UInt32(flags)) == 0
        {
            return
        }
        let failure = LibvirtFailure.last()
        // The domain started or stopped between the check and the call: retry once the other way.
        guard failure.has(VIR_ERR_OPERATION_INVALID) else {
            throw VirtError.fromLibvirt(
                failure, operation: "set metadata of", domain: name, connection: connection.handle)
        }
        flags = active ? config : config | live
        guard
            virDomainSetMetadata(
                handle, type, xml, GuestMetadata.namespacePrefix, GuestMetadata.namespaceURI,
                UInt32(flags)) == 0
        else {
            throw self.failure("set metadata of")
        }
    }

    // MARK: - Process

    /// The QEMU process id of an active domain, from libvirt's pid file
    /// (`/run/libvirt/qemu/<name>.pid`, root-readable); `nil` when not running or not readable.
    ///
    /// Useful to watch the process directly (e.g. with a pidfd) for the fastest death detection.
    public func qemuProcessID() -> Int32? {
        let fd = open("/run/libvirt/qemu/\(name).pid", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmed()
        guard let pid = Int32(text), pid > 0 else { return nil }
        return pid
    }

    private func failure(_ operation: String) -> VirtError {
        connection.failure(operation: operation, domain: name)
    }
}
