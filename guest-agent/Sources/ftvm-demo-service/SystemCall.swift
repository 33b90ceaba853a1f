import Glibc

/// A failed system call: which one, and its errno.
struct SystemError: Error, CustomStringConvertible {
    var call: String
    var code: Int32

    var description: String { "\(call): \(String(cString: strerror(code)))" }

    /// The non-blocking "try again later" answer, not a failure.
    var isWouldBlock: Bool { code == EAGAIN || code == EWOULDBLOCK }
}

/// Every system call goes through here: `-1` becomes a thrown `SystemError`, EINTR is retried.
func systemCall<Result: FixedWidthInteger>(_ name: String, _ body: () -> Result) throws(SystemError) -> Result {
    while true {
        let result = body()
        guard result == -1 else { return result }
        let code = errno
        guard code == EINTR else { throw SystemError(call: name, code: code) }
    }
}

/// Owns one file descriptor and closes it when released; close(2) is not retried on EINTR
/// because Linux has already freed the descriptor by then.
final class FileDescriptor {
    let raw: Int32

    init(_ raw: Int32) {
        self.raw = raw
    }

    deinit {
        close(raw)
    }
}

/// Writes a line to stderr with write(2): the C `stderr` global is not concurrency-safe in Swift 6.
func log(_ message: String) {
    let line = Array("ftvm-demo-service: \(message)\n".utf8)
    line.withUnsafeBytes { bytes in
        var offset = 0
        while offset < bytes.count {
            guard
                let written = try? systemCall(
                    "write", { write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset) })
            else { return }
            offset += written
        }
    }
}

/// Milliseconds on the monotonic clock, for linger deadlines.
func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
