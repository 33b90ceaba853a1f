import CFTVMShim
import Glibc
import SystemPackage

/// Tells, without blocking, whether a process (not necessarily our child) has exited, through
/// a pidfd. Used for QEMU: its death is visible here the instant the kernel reaps its threads,
/// well before libvirt has finished its own clean-up and sent the STOPPED event.
public final class ProcessWatch: Sendable {
    public let pid: Int32
    private let fd: Int32

    public init(pid: Int32) throws(Errno) {
        self.pid = pid
        fd = try Syscall.negativeErrno { ftvm_pidfd_open(pid) }
    }

    public var hasExited: Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    deinit { close(fd) }
}
