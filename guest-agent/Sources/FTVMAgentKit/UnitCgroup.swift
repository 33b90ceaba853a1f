/// What the agent reads about a systemd unit from its cgroup (cgroup v2, the unified hierarchy
/// systemd 252 uses by default): pure parsing, so it is testable without systemd.
///
/// The agent is not the parent of a unit's processes (systemd is), so it cannot `waitpid` them;
/// instead it reads the unit's `cgroup.events` every tick. `populated 1` means at least one
/// process of the unit lives; systemd empties the cgroup when the unit's main process dies
/// (`KillMode=control-group`, the default), so `populated 0` is the unit's exit.
public enum UnitCgroup {
    /// systemd's unified hierarchy; a unit of the default slice lives in `system.slice/UNIT`.
    public static let root = "/sys/fs/cgroup"

    public static func directory(ofUnit unit: String) -> String { "\(root)/system.slice/\(unit)" }

    /// The `populated` key of a `cgroup.events` file, or nil when the text has none.
    public static func populated(events text: String) -> Bool? {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "populated" { return fields[1] == "1" }
        }
        return nil
    }

    /// The pids of a `cgroup.procs` file, in its order.
    public static func pids(procs text: String) -> [Int32] {
        text.split(whereSeparator: { $0 == "\n" || $0 == " " }).compactMap { Int32($0) }
    }

    /// The parent pid from a `/proc/PID/stat` line (`ProcStat`).
    public static func parentPID(stat text: String) -> Int32? {
        guard let fields = ProcStat.fieldsAfterCommand(text), fields.count >= 2 else { return nil }
        return Int32(fields[1])
    }

    /// The unit's main process among its cgroup's processes: the first one whose parent is
    /// systemd (PID 1), as a `Type=simple` service's process and a `Type=forking` daemon after
    /// its double fork both are; otherwise the first process. Nil for an empty cgroup.
    public static func mainPID(_ processes: [(pid: Int32, parent: Int32?)]) -> Int32? {
        processes.first { $0.parent == 1 }?.pid ?? processes.first?.pid
    }
}
