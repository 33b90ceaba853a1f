import Glibc
import SystemPackage

/// The one way this project calls into the kernel: retries `EINTR`, turns failure into `Errno`.
public enum Syscall {
    /// Runs a libc call that returns -1 and sets `errno` on failure.
    @discardableResult
    public static func retrying<T: FixedWidthInteger>(_ call: () -> T) throws(Errno) -> T {
        while true {
            let result = call()
            if result != -1 { return result }
            let code = errno
            if code == EINTR { continue }
            throw Errno(rawValue: code)
        }
    }

    /// Runs one of the shim's calls, which return `-errno` on failure instead of setting errno.
    @discardableResult
    public static func negativeErrno(_ call: () -> Int32) throws(Errno) -> Int32 {
        while true {
            let result = call()
            if result >= 0 { return result }
            if -result == EINTR { continue }
            throw Errno(rawValue: -result)
        }
    }
}

extension Errno {
    /// True for the "try again later" answers of a non-blocking fd.
    public var isWouldBlock: Bool { self == .wouldBlock || self == .resourceTemporarilyUnavailable }
}
