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
