import Glibc

/// Starts programs with posix_spawn. Children never inherit the agent's real-time priority
/// unless asked: a SCHED_FIFO service could starve the heartbeat it is supposed to be judged by.
enum Spawner {
    enum Policy {
        case normal
        /// SCHED_FIFO at this priority (used only to hang the kernel on purpose).
        case realtime(Int32)
    }

    /// Spawns `arguments[0]` (an absolute path) in its own process group; returns the pid.
    static func spawn(_ arguments: [String], policy: Policy = .normal) -> Result<pid_t, SpawnError> {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var parameters = sched_param()
        switch policy {
        case .normal:
            posix_spawnattr_setschedpolicy(&attributes, SCHED_OTHER)
            parameters.sched_priority = 0
        case .realtime(let priority):
            posix_spawnattr_setschedpolicy(&attributes, SCHED_FIFO)
            parameters.sched_priority = priority
        }
        posix_spawnattr_setschedparam(&attributes, &parameters)
        posix_spawnattr_setpgroup(&attributes, 0)
        // Children start with default signal dispositions and an empty mask.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(
            &attributes,
            Int16(
                POSIX_SPAWN_SETSCHEDULER | POSIX_SPAWN_SETSCHEDPARAM | POSIX_SPAWN_SETPGROUP
                    | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, arguments[0], nil, &attributes, &argv, environ)
        return status == 0 ? .success(pid) : .failure(SpawnError(program: arguments[0], code: status))
    }

    struct SpawnError: Error, CustomStringConvertible {
        var program: String
        var code: Int32
        var description: String { "cannot start \(program): \(String(cString: strerror(code)))" }
    }
}
