import Glibc

public enum CurrentThread {
    /// Names the calling thread so it shows in `top -H`, /proc/PID/task/TID/comm and stack dumps
    /// (`pthread_setname_np` needs _GNU_SOURCE, which Glibc's module does not give Swift; /proc
    /// is equivalent). Foundation's `Thread.name` does not reach the kernel. At most 15 bytes.
    public static func name(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = name.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
