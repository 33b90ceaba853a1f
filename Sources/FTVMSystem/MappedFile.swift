import Glibc
import SystemPackage

/// A file mapped `MAP_SHARED` into this process: a `/dev/shm` region on the host, or a PCI BAR
/// (`/sys/bus/pci/devices/…/resource2`) in the guest. Owns the mapping and unmaps it in `deinit`;
/// the fd is closed as soon as the mapping exists (the mapping keeps the file alive).
public final class MappedFile: @unchecked Sendable {
    /// The first byte of the mapping. Valid for the life of this object.
    public let base: UnsafeMutableRawPointer
    public let size: Int
    public let path: String

    /// Maps `path`. With `createSize`, the file is created (mode `mode`) when missing and grown
    /// to `createSize` when smaller; without it, the file must exist and is mapped whole.
    public init(
        path: String, createSize: Int? = nil, mode: FilePermissions = [.ownerReadWrite, .groupReadWrite]
    )
        throws(Errno)
    {
        var options: FileDescriptor.OpenOptions = [.closeOnExec]
        if createSize != nil { options.insert(.create) }
        let fd = try Self.open(path, options: options, mode: mode)
        defer { _ = try? fd.close() }

        var info = stat()
        try Syscall.retrying { fstat(fd.rawValue, &info) }
        var length = Int(info.st_size)
        if let createSize, length < createSize {
            try Syscall.retrying { ftruncate(fd.rawValue, off_t(createSize)) }
            length = createSize
        }
        if length == 0 {
            // sysfs reports BARs with their real size; a zero-length file is never a region.
            throw Errno.invalidArgument
        }
        guard let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0),
            mapped != MAP_FAILED
        else { throw Errno(rawValue: errno) }
        self.base = mapped
        self.size = length
        self.path = path
    }

    private static func open(
        _ path: String, options: FileDescriptor.OpenOptions, mode: FilePermissions
    )
        throws(Errno) -> FileDescriptor
    {
        do {
            return try FileDescriptor.open(
                FilePath(path), .readWrite, options: options, permissions: mode, retryOnInterrupt: true)
        } catch let error as Errno {
            throw error
        } catch {
            throw Errno.ioError
        }
    }

    deinit { munmap(base, size) }
}
