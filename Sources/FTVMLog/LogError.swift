import SystemPackage

/// Why a connection log could not be created or attached.
///
/// A log whose header cannot be vouched for is never used: sizing a walk over the region from a
/// damaged word would replay garbage. The messages say how to get going again, and that doing so
/// gives up the connections the log held (they cannot be replayed; they are reset on failover).
public enum LogError: Error, CustomStringConvertible, Equatable, Sendable {
    /// `create` was asked for a geometry this build cannot lay out.
    case invalidGeometry(String)
    /// The file could not be created or pre-allocated.
    case cannotCreate(path: String, errno: Errno)
    /// The file system (normally the `/dev/shm` tmpfs) has no room for the whole log.
    case noSpace(path: String, bytes: Int)
    /// The file could not be opened or mapped (for `attach`, most often: it does not exist).
    case cannotMap(path: String, errno: Errno)
    case tooSmall(path: String, size: Int)
    case badMagic(path: String, found: UInt64)
    case unsupportedVersion(path: String, found: UInt32)
    case sizeMismatch(path: String, header: UInt64, actual: Int)
    case badHeaderChecksum(path: String)
    /// The header's checksum verifies but its geometry does not (written by a broken build).
    case badGeometry(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidGeometry(let reason):
            "cannot lay out a connection log: \(reason)"
        case .cannotCreate(let path, let errno):
            "cannot create connection log \(path): \(errno)"
        case .noSpace(let path, let bytes):
            "cannot pre-allocate \(bytes) bytes for connection log \(path): the file system is full; free space in /dev/shm or configure fewer slots or chunks"
        case .cannotMap(let path, let errno):
            "cannot map connection log \(path): \(errno)"
        case .tooSmall(let path, let size):
            "connection log \(path) is \(size) bytes, smaller than its \(LogLayout.headerSize)-byte header: it was truncated or is not an ftvm log; \(Self.remedy(path))"
        case .badMagic(let path, let found):
            "connection log \(path) has magic 0x\(String(found, radix: 16)), not ftvm's: it is corrupt or belongs to something else; \(Self.remedy(path))"
        case .unsupportedVersion(let path, let found):
            "connection log \(path) has layout version \(found); this build reads version \(LogLayout.version): finish with the ftvm that wrote it, or \(Self.remedy(path))"
        case .sizeMismatch(let path, let header, let actual):
            "connection log \(path) says it is \(header) bytes but the file is \(actual): it was truncated or resized; \(Self.remedy(path))"
        case .badHeaderChecksum(let path):
            "connection log \(path) has a header that fails its checksum: its geometry cannot be trusted; \(Self.remedy(path))"
        case .badGeometry(let path, let reason):
            "connection log \(path) has an impossible geometry (\(reason)); \(Self.remedy(path))"
        }
    }

    private static func remedy(_ path: String) -> String {
        "delete it with `ftvm down` or `rm \(path)` and start again (the connections it held cannot be replayed)"
    }
}
