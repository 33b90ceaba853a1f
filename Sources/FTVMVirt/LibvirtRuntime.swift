internal import CLibvirt
internal import FTVMSystem
import Glibc

/// Process-wide libvirt setup, done once before the first connection opens.
///
/// - A no-op error handler, so libvirt does not print every failure to stderr; errors are read
///   back with `virGetLastError` (thread-local) and thrown as ``VirtError``.
/// - libvirt's default event loop implementation, which must be registered *before* any
///   connection is opened: a connection opened earlier never delivers events or keepalives.
/// - One dedicated thread, "libvirt-events", running `virEventRunDefaultImpl` for the life of the
///   process. Event and close callbacks run on it, so handlers must return quickly.
enum LibvirtRuntime {
    private static let setup: Result<Void, VirtError> = {
        virSetErrorFunc(nil) { _, _ in }
        guard virInitialize() == 0 else {
            return .failure(.eventLoopUnavailable("virInitialize failed: \(LibvirtFailure.last().message)"))
        }
        guard virEventRegisterDefaultImpl() == 0 else {
            return .failure(
                .eventLoopUnavailable("virEventRegisterDefaultImpl failed: \(LibvirtFailure.last().message)"))
        }
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { _ in LibvirtRuntime.runEventLoop() }, nil)
        guard created == 0 else {
            return .failure(.eventLoopUnavailable("pthread_create failed: \(String(cString: strerror(created)))"))
        }
        pthread_detach(thread)
        return .success(())
    }()

    /// The event thread's body; never returns.
    private static func runEventLoop() -> Never {
        CurrentThread.name("libvirt-events")
        while true {
            // Returns after each dispatched event or timer. A failure here is a poll(2) error;
            // back off briefly rather than spin on it.
            if virEventRunDefaultImpl() < 0 {
                _ = LibvirtFailure.last()
                usleep(100_000)
            }
        }
    }

    /// Runs the one-time setup (cheap after the first call).
    static func prepare() throws(VirtError) {
        try setup.get()
    }
}

/// A copy of libvirt's thread-local last error, taken right after a failed call.
struct LibvirtFailure: Sendable {
    var code: Int32
    var domain: Int32
    var message: String
    /// For `VIR_ERR_SYSTEM_ERROR`, the errno libvirt saw (`virReportSystemError` stores it in
    /// `int1`); meaningless for other codes.
    var systemErrno: Int32

    /// Copies and clears the calling thread's last libvirt error.
    static func last() -> LibvirtFailure {
        guard let error = virGetLastError() else {
            return LibvirtFailure(code: 0, domain: 0, message: "libvirt reported no error details", systemErrno: 0)
        }
        let failure = LibvirtFailure(
            code: error.pointee.code, domain: error.pointee.domain,
            message: error.pointee.message.map { String(cString: $0) } ?? "libvirt error \(error.pointee.code)",
            systemErrno: error.pointee.int1)
        virResetLastError()
        return failure
    }

    func has(_ number: virErrorNumber) -> Bool { code == Int32(bitPattern: number.rawValue) }
    func from(_ origin: virErrorDomain) -> Bool { domain == Int32(bitPattern: origin.rawValue) }

    /// Whether nothing listens on libvirtd's socket: the socket file is missing (ENOENT) or
    /// nobody accepts on it (ECONNREFUSED). Other socket errors — EACCES for a non-root user,
    /// say — are not "libvirtd is not running" and must not be reported as such.
    var isSocketUnreachable: Bool {
        has(VIR_ERR_SYSTEM_ERROR) && (from(VIR_FROM_RPC) || from(VIR_FROM_REMOTE))
            && (systemErrno == ENOENT || systemErrno == ECONNREFUSED)
    }
}

extension VirtError {
    /// Maps the last libvirt error of a failed call on `connection` (and `domain`, if the call
    /// was about one) to the case an operator can act on.
    static func fromLibvirt(
        _ failure: LibvirtFailure, operation: String, domain: String? = nil, connection: OpaquePointer? = nil
    ) -> VirtError {
        // A dead connection explains any failure on it better than the RPC error does.
        if let connection, virConnectIsAlive(connection) == 0 {
            return .connectionLost(operation: operation, detail: failure.message)
        }
        if failure.has(VIR_ERR_NO_DOMAIN) { return .domainNotFound(domain ?? failure.message) }
        if failure.has(VIR_ERR_OPERATION_INVALID) {
            return .operationInvalid(operation: operation, domain: domain ?? "?", detail: failure.message)
        }
        if failure.has(VIR_ERR_XML_ERROR) || failure.has(VIR_ERR_XML_DETAIL) || failure.has(VIR_ERR_XML_INVALID_SCHEMA)
            || failure.has(VIR_ERR_CONFIG_UNSUPPORTED)
        {
            return .domainXMLRejected(operation: operation, detail: failure.message)
        }
        return .libvirt(operation: operation, code: failure.code, detail: failure.message)
    }
}
