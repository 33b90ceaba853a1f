internal import CLibvirt
import Glibc
import Logging
import Synchronization

/// One connection to libvirtd (normally `qemu:///system`), owning the `virConnectPtr`.
///
/// libvirt connections are thread-safe (every public libvirt API may be called on one connection
/// from several threads), hence `@unchecked Sendable` without a lock. Errors are reported through
/// libvirt's thread-local last error, which each wrapper reads on the calling thread right after
/// the failed call.
///
/// Opening requires root (or membership in the `libvirt` group) for `qemu:///system`. The first
/// connection in a process also starts libvirt's event loop thread (see ``LibvirtRuntime``).
public final class LibvirtConnection: @unchecked Sendable {
    /// The URI ftvm uses unless told otherwise: the system QEMU driver, where guests outlive the
    /// daemon and `virsh list` shows them.
    public static let defaultURI = "qemu:///system"

    public let uri: String
    let handle: OpaquePointer
    let logger: Logger
    private let closeHandler: CloseHandlerBox?

    /// Opens a connection.
    ///
    /// - Parameters:
    ///   - keepAlive: ping libvirtd so a dead daemon is noticed even while no call is in flight;
    ///     `nil` disables it.
    ///   - onClose: called (on the event thread) when the connection closes for any reason other
    ///     than this object going away — typically libvirtd exiting or a keepalive timeout.
    /// - Throws: ``VirtError/libvirtdUnreachable(uri:detail:)`` when nothing answers on the socket,
    ///   ``VirtError/connectionFailed(uri:detail:)`` for other refusals.
    public init(
        uri: String = LibvirtConnection.defaultURI, keepAlive: KeepAlive? = .standard, logger: Logger? = nil,
        onClose: (@Sendable (ConnectionCloseReason) -> Void)? = nil
    ) throws(VirtError) {
        try LibvirtRuntime.prepare()
        self.uri = uri
        self.logger = logger ?? Logger(label: "ftvm.virt")
        guard let handle = virConnectOpen(uri) else {
            let failure = LibvirtFailure.last()
            if failure.isSocketUnreachable { throw VirtError.libvirtdUnreachable(uri: uri, detail: failure.message) }
            throw VirtError.connectionFailed(uri: uri, detail: failure.message)
        }
        self.handle = handle

        if let keepAlive, virConnectSetKeepAlive(handle, keepAlive.intervalSeconds, keepAlive.count) < 0 {
            let failure = LibvirtFailure.last()
            virConnectClose(handle)
            throw VirtError.libvirt(operation: "set keepalive", code: failure.code, detail: failure.message)
        }

        if let onClose {
            let box = CloseHandlerBox(onClose)
            let opaque = Unmanaged.passRetained(box).toOpaque()
            guard virConnectRegisterCloseCallback(handle, closeTrampoline, opaque, releaseCloseBox) == 0 else {
                let failure = LibvirtFailure.last()
                Unmanaged<CloseHandlerBox>.fromOpaque(opaque).release()
                virConnectClose(handle)
                throw VirtError.libvirt(
                    operation: "register close callback", code: failure.code, detail: failure.message)
            }
            closeHandler = box
        } else {
            closeHandler = nil
        }
        self.logger.debug("connected to libvirt", metadata: ["uri": "\(uri)"])
    }

    deinit {
        if closeHandler != nil { virConnectUnregisterCloseCallback(handle, closeTrampoline) }
        virConnectClose(handle)
    }

    /// Whether the connection still works (false once libvirtd went away).
    public var isAlive: Bool { virConnectIsAlive(handle) == 1 }

    // MARK: - Domains

    /// Defines (or updates) a persistent domain from XML (`virDomainDefineXMLFlags` with schema
    /// validation, so a bad definition fails here rather than at start).
    ///
    /// Redefining an existing name must carry that domain's UUID; a running domain's new
    /// definition takes effect at its next start.
    public func define(xml: String) throws(VirtError) -> Domain {
        let flags = UInt32(VIR_DOMAIN_DEFINE_VALIDATE.rawValue)
        guard let pointer = virDomainDefineXMLFlags(handle, xml, flags) else {
            throw failure(operation: "define domain")
        }
        return try Domain(connection: self, handle: pointer)
    }

    /// Renders `spec` with ``DomainXML/render(_:)`` and defines it.
    ///
    /// - Throws: ``VirtError/invalidSpec(_:)`` when a domain of that name exists and `spec.uuid`
    ///   is `nil` — libvirt would refuse with a less helpful "already exists with uuid" message.
    public func define(_ spec: DomainSpec) throws(VirtError) -> Domain {
        let xml = try DomainXML.render(spec)
        if spec.uuid == nil, let existing = try domainIfDefined(named: spec.name) {
            throw VirtError.invalidSpec(
                "domain '\(spec.name)' already exists (uuid \(existing.uuid)): set DomainSpec.uuid to that uuid "
                    + "to update its definition, or undefine it first")
        }
        return try define(xml: xml)
    }

    /// The domain with this name.
    ///
    /// - Throws: ``VirtError/domainNotFound(_:)`` when none is defined.
    public func domain(named name: String) throws(VirtError) -> Domain {
        guard let pointer = virDomainLookupByName(handle, name) else {
            throw failure(operation: "look up domain", domain: name)
        }
        return try Domain(connection: self, handle: pointer)
    }

    /// The domain with this name, or `nil` when none is defined.
    public func domainIfDefined(named name: String) throws(VirtError) -> Domain? {
        do {
            return try domain(named: name)
        } catch .domainNotFound {
            return nil
        }
    }

    /// Every domain libvirt knows, running or not.
    public func allDomains() throws(VirtError) -> [Domain] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = virConnectListAllDomains(handle, &list, 0)
        guard count >= 0, let list else { throw failure(operation: "list domains") }
        // The array is ours to free; each virDomainPtr moves into a Domain (which frees it).
        defer { free(list) }
        var domains: [Domain] = []
        var firstError: VirtError?
        for index in 0..<Int(count) {
            guard let pointer = list[index] else { continue }
            do {
                domains.append(try Domain(connection: self, handle: pointer))
            } catch {
                // A domain undefined between listing and reading its name: skip it.
                firstError = firstError ?? error
            }
        }
        if domains.isEmpty, let firstError, count > 0 { throw firstError }
        return domains
    }

    /// Name, UUID and state of every domain, including inactive ones.
    public func listDomains() throws(VirtError) -> [DomainSummary] {
        var summaries: [DomainSummary] = []
        for domain in try allDomains() {
            do {
                summaries.append(
                    DomainSummary(
                        name: domain.name, uuid: domain.uuid, state: try domain.state(),
                        isPersistent: domain.isPersistent))
            } catch .domainNotFound {
                continue  // undefined while we were listing
            }
        }
        return summaries
    }

    // MARK: - Networks

    /// The host bridge of the active libvirt network `name` (where its guests' taps are plugged).
    ///
    /// - Throws: ``VirtError/networkUnusable(_:_:)`` when there is no such network, it is not
    ///   active, or it has no bridge (a macvtap or hostdev network).
    public func bridge(ofNetwork name: String) throws(VirtError) -> String {
        guard let network = virNetworkLookupByName(handle, name) else {
            throw VirtError.networkUnusable(name, "no such libvirt network (see `virsh net-list --all`)")
        }
        defer { virNetworkFree(network) }
        guard virNetworkIsActive(network) == 1 else {
            throw VirtError.networkUnusable(name, "it is not active: start it with `virsh net-start \(name)`")
        }
        guard let bridge = virNetworkGetBridgeName(network) else {
            throw VirtError.networkUnusable(name, "it has no bridge ftvm could plug the relay's uplink into")
        }
        defer { free(bridge) }
        return String(cString: bridge)
    }

    // MARK: - Events

    /// Delivers every domain lifecycle event on this connection to `handler` as
    /// `(domain name, event)` until the returned subscription is cancelled or released.
    ///
    /// The handler runs on libvirt's event thread: it must not block, and must not make libvirt
    /// calls that wait for other events. Hand the event to a queue or actor instead.
    public func subscribeLifecycleEvents(
        _ handler: @escaping @Sendable (String, LifecycleEvent) -> Void
    ) throws(VirtError) -> EventSubscription {
        let box = LifecycleHandlerBox(handler)
        let opaque = Unmanaged.passRetained(box).toOpaque()
        let callback = unsafeBitCast(lifecycleTrampoline, to: virConnectDomainEventGenericCallback.self)
        let id = virConnectDomainEventRegisterAny(
            handle, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue), callback, opaque, releaseLifecycleBox)
        guard id >= 0 else {
            // libvirt calls the free callback only for registrations that succeeded.
            Unmanaged<LifecycleHandlerBox>.fromOpaque(opaque).release()
            throw failure(operation: "register lifecycle events")
        }
        return EventSubscription(connection: self, callbackID: id)
    }

    /// Turns the thread's last libvirt error into a ``VirtError``.
    func failure(operation: String, domain: String? = nil) -> VirtError {
        VirtError.fromLibvirt(LibvirtFailure.last(), operation: operation, domain: domain, connection: handle)
    }
}

/// Keepalive settings (`virConnectSetKeepAlive`): libvirt pings the daemon every
/// `intervalSeconds` and closes the connection after `count` unanswered pings.
public struct KeepAlive: Sendable, Equatable {
    public var intervalSeconds: Int32
    public var count: UInt32

    public init(intervalSeconds: Int32, count: UInt32) {
        self.intervalSeconds = intervalSeconds
        self.count = count
    }

    /// A dead libvirtd is noticed within about 20 s. Guests keep running without libvirtd, so
    /// this only bounds how long the daemon works with a stale view.
    public static let standard = KeepAlive(intervalSeconds: 5, count: 3)
}

/// Why libvirt closed a connection (`virConnectCloseReason`).
public enum ConnectionCloseReason: Sendable, Equatable, CustomStringConvertible {
    /// An I/O error on the socket.
    case error
    /// libvirtd closed the socket (it exited or was restarted).
    case endOfFile
    /// Keepalive pings went unanswered.
    case keepAlive
    /// Closed by this process.
    case client
    case other(Int32)

    init(_ raw: Int32) {
        switch raw {
        case 0: self = .error
        case 1: self = .endOfFile
        case 2: self = .keepAlive
        case 3: self = .client
        default: self = .other(raw)
        }
    }

    public var description: String {
        switch self {
        case .error: return "I/O error"
        case .endOfFile: return "libvirtd closed the connection"
        case .keepAlive: return "libvirtd stopped answering keepalives"
        case .client: return "closed by this process"
        case .other(let raw): return "close reason \(raw)"
        }
    }
}

/// A registered lifecycle callback; cancelled by ``cancel()`` or when released.
///
/// Keeps its connection open while it exists.
public final class EventSubscription: Sendable {
    private let connection: LibvirtConnection
    private let callbackID: Mutex<Int32?>

    init(connection: LibvirtConnection, callbackID: Int32) {
        self.connection = connection
        self.callbackID = Mutex(callbackID)
    }

    deinit { cancel() }

    /// Stops delivery. Safe to call more than once; a callback already running may still finish.
    public func cancel() {
        guard
            let id = callbackID.withLock({ id -> Int32? in
                defer { id = nil }
                return id
            })
        else { return }
        if virConnectDomainEventDeregisterAny(connection.handle, id) < 0 {
            let failure = LibvirtFailure.last()
            connection.logger.warning(
                "could not deregister lifecycle callback",
                metadata: ["callback": "\(id)", "error": "\(failure.message)"])
        }
    }
}

// MARK: - C callbacks

/// Heap box carrying a Swift closure through libvirt's `void *opaque`; released by libvirt's
/// free callback once the registration is gone.
final class LifecycleHandlerBox: Sendable {
    let handler: @Sendable (String, LifecycleEvent) -> Void
    init(_ handler: @escaping @Sendable (String, LifecycleEvent) -> Void) { self.handler = handler }
}

final class CloseHandlerBox: Sendable {
    let handler: @Sendable (ConnectionCloseReason) -> Void
    init(_ handler: @escaping @Sendable (ConnectionCloseReason) -> Void) { self.handler = handler }
}

/// `virConnectDomainEventCallback` for VIR_DOMAIN_EVENT_ID_LIFECYCLE.
private let lifecycleTrampoline:
    @convention(c) (
        OpaquePointer?, OpaquePointer?, Int32, Int32, UnsafeMutableRawPointer?
    ) -> Int32 = { _, domain, event, detail, opaque in
        guard let domain, let opaque else { return 0 }
        let box = Unmanaged<LifecycleHandlerBox>.fromOpaque(opaque).takeUnretainedValue()
        let name = virDomainGetName(domain).map { String(cString: $0) } ?? "?"
        box.handler(name, LifecycleEvent(event: event, detail: detail))
        return 0
    }

private let releaseLifecycleBox: @convention(c) (UnsafeMutableRawPointer?) -> Void = { opaque in
    guard let opaque else { return }
    Unmanaged<LifecycleHandlerBox>.fromOpaque(opaque).release()
}

private let closeTrampoline: @convention(c) (OpaquePointer?, Int32, UnsafeMutableRawPointer?) -> Void = {
    _, reason, opaque in
    guard let opaque else { return }
    Unmanaged<CloseHandlerBox>.fromOpaque(opaque).takeUnretainedValue().handler(ConnectionCloseReason(reason))
}

private let releaseCloseBox: @convention(c) (UnsafeMutableRawPointer?) -> Void = { opaque in
    guard let opaque else { return }
    Unmanaged<CloseHandlerBox>.fromOpaque(opaque).release()
}
