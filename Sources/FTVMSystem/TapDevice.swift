import CFTVMShim
import Glibc
import SystemPackage

/// A tap device: the clients' side of the relay. Reads and writes whole Ethernet frames
/// (no packet-info header), each after a virtio-net header when opened with `offload`. Owns the fd. A persistent device outlives it (so clients keep
/// their route while a daemon restarts) and goes away with its network namespace.
public final class TapDevice: Sendable {
    public let fd: Int32
    public let name: String

    /// Creates (or attaches to) tap `name` inside the network namespace bound at `namespacePath`
    /// (e.g. `/run/netns/ftvm-demo`), or in this process's namespace when nil. Needs root.
    /// With `offload` the kernel hands over TSO super-frames with partial checksums and takes
    /// them back, each frame after its virtio-net header.
    public init(name: String, namespacePath: String?, persistent: Bool = false, offload: Bool = false) throws(Errno) {
        let persist: Int32 = persistent ? 1 : 0
        let offloads: Int32 = offload ? 1 : 0
        let fd: Int32
        if let namespacePath {
            fd = try Syscall.negativeErrno { ftvm_tap_open(namespacePath, name, persist, offloads) }
        } else {
            fd = try Syscall.negativeErrno { ftvm_tap_open(nil, name, persist, offloads) }
        }
        do {
            try Syscall.negativeErrno { ftvm_set_nonblocking(fd) }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.name = name
    }

    /// Reads one frame; nil when none is waiting.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        do {
            return try Syscall.retrying { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        } catch  where error.isWouldBlock {
            return nil
        }
    }

    /// Writes one frame. A full queue drops it (the kernel does the same on a busy link).
    public func write(_ frame: UnsafeRawBufferPointer) throws(Errno) {
        do {
            try Syscall.retrying { Glibc.write(fd, frame.baseAddress, frame.count) }
        } catch  where error.isWouldBlock {
        }
    }

    deinit { close(fd) }
}
