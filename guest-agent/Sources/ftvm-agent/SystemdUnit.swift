import FTVMAgentKit
import FTVMSystem
import Glibc
import SystemPackage

/// A systemd unit the agent supervises, seen through its cgroup (cgroup v2) and `systemctl`.
/// Reading `cgroup.events` costs one small sysfs read a tick and needs neither D-Bus nor
/// libsystemd, so the agent stays a static binary with no dependencies.
enum SystemdUnit {
    /// Where Debian (before and after the /usr merge) and other distributions have it.
    static let systemctl = "/bin/systemctl"

    static func directory(_ unit: String) -> String { UnitCgroup.directory(ofUnit: unit) }

    /// True while at least one process of the unit lives; false when the unit is stopped (its
    /// cgroup is then gone) or the file cannot be read.
    static func isPopulated(_ unit: String) -> Bool {
        guard let events = try? SmallFile.read("\(directory(unit))/cgroup.events") else { return false }
        return UnitCgroup.populated(events: events) ?? false
    }

    static func processes(_ unit: String) -> [pid_t] {
        guard let procs = try? SmallFile.read("\(directory(unit))/cgroup.procs") else { return [] }
        return UnitCgroup.pids(procs: procs)
    }

    /// The unit's main process (see `UnitCgroup.mainPID`), or nil when none lives.
    static func mainPID(_ unit: String) -> pid_t? {
        UnitCgroup.mainPID(
            processes(unit).map { pid in
                (pid, (try? SmallFile.read("/proc/\(pid)/stat")).flatMap(UnitCgroup.parentPID(stat:)))
            })
    }

    /// SIGKILLs every process of the unit at once (`cgroup.kill`, Linux 5.14+).
    static func killAll(_ unit: String) throws(Errno) {
        try SmallFile.write("\(directory(unit))/cgroup.kill", "1")
    }
}
