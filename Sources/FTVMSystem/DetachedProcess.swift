import CFTVMShim
import Glibc
import SystemPackage

/// Starts a long-lived background process (the daemon) in a new session, so it survives the
/// terminal and the command that started it, with stdin from /dev/null and stdout and stderr
/// appended to a log file.
public enum DetachedProcess {
    /// glibc's POSIX_SPAWN_SETSID (since 2.26), not exported to Swift under that name.
    private static let setsidFlag: Int32 = 0x80

    public static func spawn(_ arguments: [String], logPath: String) throws(Errno) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Whatever else the caller had open (a test's pipe, say) must not be held for the
        // daemon's whole life: the caller would never see end-of-file on it.
        ftvm_spawn_close_from(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(setsidFlag))

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        guard status == 0 else { throw Errno(rawValue: status) }
        return pid
    }

    /// True while `pid` (a child of ours) has not exited; reaps it when it has.
    public static func isRunning(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    /// The running executable's path (to start ourselves as the daemon).
    public static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
