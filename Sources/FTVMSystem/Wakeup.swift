import CFTVMShim
import Glibc
import SystemPackage

/// An fd a poll(2) loop watches so that another thread can wake it at once (an eventfd), instead
/// of the loop noticing a request only when its poll times out or a frame happens to arrive.
public final class Wakeup: Sendable {
    public let fd: Int32

    public init() throws(Errno) {
        fd = try Syscall.negativeErrno { ftvm_eventfd() }
    }

    /// Makes `fd` readable (any thread; signals before a `clear` add up to one wake-up).
    public func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, MemoryLayout<UInt64>.size)
    }

    /// Makes `fd` unreadable again (the polling thread, once it saw it readable).
    public func clear() {
        var count: UInt64 = 0
        _ = read(fd, &count, MemoryLayout<UInt64>.size)
    }

    deinit { close(fd) }
}
