import Glibc

/// A `/proc/PID/stat` line's fields after the command name. The name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so the fields are counted after the
/// last `)`: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt, majflt, cmajflt,
/// utime, stime, …
public enum ProcStat {
    /// The fields from the state on; nil for a line without a command name.
    public static func fieldsAfterCommand(_ text: String) -> [Substring]? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }
}

/// A process on its way out, seen before `waitpid` can report it: the kernel sends its sockets'
/// FINs and RSTs while it exits, and the host's close fence lets them go once the agent says
/// every service runs (docs/replay.md, "The close fence"), so a service must stop counting as
/// running from the moment it is doomed, not from its reap. Seen under load: the fence let a
/// killed service's FINs go 46 ms after they came, with the service still reported running,
/// and two downloads were cut.
public enum ProcessEnd {
    /// The kernel's task flag for a task in `do_exit`.
    static let exitingFlag: UInt64 = 0x4

    /// The wait status the process will report (as `waitpid` gives it: a signal number, or an
    /// exit code shifted left by 8) when its `/proc/PID/stat` (`stat`) shows it ending (a
    /// zombie, or exiting), or 9 (SIGKILL) when its `/proc/PID/status` (`status`) shows a
    /// SIGKILL pending; nil while it runs.
    public static func waitStatus(stat: String, status: String?) -> Int32? {
        let doomed = killPending(status)
        guard let fields = ProcStat.fieldsAfterCommand(stat), fields.count > 6, let flags = UInt64(fields[6]),
            fields[0] == "Z" || fields[0] == "X" || flags & exitingFlag != 0
        else { return doomed ? SIGKILL : nil }
        // (The exit code is set a little after the flag: 0 until then.)
        if fields.count > 49, let code = Int32(fields[49].filter { $0 != "\n" }), code != 0 { return code }
        return doomed ? SIGKILL : 0
    }

    /// Whether a `/proc/PID/status` text shows SIGKILL pending, for the process (`ShdPnd`) or
    /// its main thread (`SigPnd`).
    static func killPending(_ status: String?) -> Bool {
        guard let status else { return false }
        for line in status.split(separator: "\n") where line.hasPrefix("ShdPnd:") || line.hasPrefix("SigPnd:") {
            let hex = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last ?? ""
            if let mask = UInt64(hex, radix: 16), mask & (1 << (SIGKILL - 1)) != 0 { return true }
        }
        return false
    }
}
