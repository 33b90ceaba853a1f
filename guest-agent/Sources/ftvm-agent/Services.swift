import FTVMAgentKit
import FTVMChannel
import FTVMSystem
import Glibc
import SystemPackage

/// Starts the services, notices their death the tick it happens, restarts them with back-off,
/// and mirrors all of it into the channel for the host.
///
/// A command service is the agent's child: `waitpid` reports its exit. A systemd unit is
/// systemd's child: the agent asks systemd to start it and watches its cgroup instead (see
/// `SystemdUnit`); it restarts a unit that died the same way, with the same back-off, so both
/// kinds behave alike for the host. A unit's own `Restart=` may restart it first; the agent's
/// start request then finds it running and changes nothing.
final class Supervisor {
    private struct Running {
        var definition: ServiceDefinition
        /// The command's pid, or the unit's main pid; nil while the service is down.
        var pid: pid_t?
        var starts = 0
        var restartAt: Int?
        var listening = false
        var probe = Probe()
        var reportedHung = false
        /// Tells a busy service from a hung one (`BusyGate`), from the CPU time its processes
        /// used, and waited for, since the previous probe's outcome (`cpuSample`).
        var busy = BusyGate()
        var cpuSample: (usage: CPUUsage, atMillis: Int)?
        /// When the agent last asked systemd to start the unit and has not seen it up yet.
        var unitRequestedAt: Int?
        /// A running `systemctl is-active` for the unit, and when the next one may start.
        var activeCheck: pid_t?
        var activeCheckAt = 0
        /// The agent killed the unit (service-crash): its exit is a SIGKILL, not unknown.
        var unitKilled = false
        /// The command's process was seen on its way out (`ProcessEnd`) and reported exited
        /// before its reap.
        var endReported = false
    }

    /// A unit's exit status is its main process's, which only systemd (its parent) sees.
    static let unknownUnitExit: Int32 = 255
    /// A unit not up this long after a start request is asked again.
    static let unitStartTimeoutMillis = 10_000
    /// How often a unit that listens but is not yet `active` is asked again.
    static let activeCheckIntervalMillis = 200

    private var services: [Running]
    private let channel: Channel

    init(definitions: [ServiceDefinition], channel: Channel) {
        self.services = definitions.prefix(ChannelLayout.serviceSlots).map { Running(definition: $0) }
        self.channel = channel
        for (index, service) in services.enumerated() {
            channel.declareService(index, name: service.definition.name, port: UInt32(service.definition.port))
        }
    }

    func startAll() {
        for index in services.indices { start(index) }
    }

    /// True once every service has accepted a TCP connection on its port.
    var allListening: Bool {
        for index in services.indices where !services[index].listening {
            guard services[index].pid != nil, Self.accepts(port: services[index].definition.port) else { return false }
            services[index].listening = true
            Console.say(
                "service \(services[index].definition.name) is listening on :\(services[index].definition.port)")
        }
        return true
    }

    /// Sends the service in `slot` the fault's signal: SIGKILL (crash) or SIGSTOP (hang).
    ///
    /// A command service gets it through its process group. The spawner makes each command the
    /// leader of its own group, so one `kill(-pgid)` reaches a multi-process server whole (nginx:
    /// the master and its worker). Signalling the leader alone falls short both ways: after
    /// SIGKILL the orphaned worker keeps the listening socket and goes on serving, so the
    /// restarted service fails with EADDRINUSE; after SIGSTOP the worker still answers the probe,
    /// so the hang is never reported. A service that moved itself into another process group is
    /// signalled alone: the agent signals no group the service does not lead.
    ///
    /// A unit gets it through its cgroup, which holds every process of the unit whatever their
    /// groups: `cgroup.kill` for a crash (the kernel kills them all at once), SIGSTOP to each
    /// listed process for a hang.
    func inject(_ signal: Int32, slot index: Int) -> (Int32, String) {
        guard services.indices.contains(index), let pid = services[index].pid else {
            return (-1, "no running service in slot \(index)")
        }
        switch services[index].definition.launch {
        case .command:
            if getpgid(pid) == pid, kill(-pid, signal) == 0 { return (0, "signalled process group \(pid)") }
            return kill(pid, signal) == 0 ? (0, "signalled pid \(pid)") : (-1, "kill: \(Errno(rawValue: errno))")
        case .unit(let unit):
            if signal == SIGKILL {
                do {
                    try SystemdUnit.killAll(unit)
                } catch {
                    return (-1, "cannot kill \(unit) through \(SystemdUnit.directory(unit))/cgroup.kill: \(error)")
                }
                services[index].unitKilled = true
                return (0, "killed every process of \(unit)")
            }
            let signalled = SystemdUnit.processes(unit).filter { kill($0, signal) == 0 }
            return signalled.isEmpty
                ? (-1, "no process of \(unit) could be signalled")
                : (0, "signalled \(signalled.count) processes of \(unit)")
        }
    }

    /// Reaps every exited child (command services and helpers alike), notices units that
    /// stopped or started, and schedules service restarts.
    func reap(nowMillis: Int) {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            let code = Self.exitCode(waitStatus: status)
            if let index = services.firstIndex(where: { $0.activeCheck == pid }) {
                activeCheckDone(index, isActive: code == 0, nowMillis: nowMillis)
                continue
            }
            guard let index = services.firstIndex(where: { $0.pid == pid }),
                case .command = services[index].definition.launch
            else { continue }
            exited(index, pid: pid, status: code, nowMillis: nowMillis)
        }
        for index in services.indices {
            if case .unit(let unit) = services[index].definition.launch {
                watch(index, unit: unit, nowMillis: nowMillis)
            }
        }
        reportEnding()
        for index in services.indices {
            if let due = services[index].restartAt, due <= nowMillis { start(index) }
        }
    }

    /// One tick's look at a unit: `cgroup.events` while it is up; while it comes up, whether it
    /// listens and then whether systemd calls it `active`.
    ///
    /// A unit is up only once both hold. While systemd activates a unit its cgroup is not a
    /// reliable sign of life (measured with nginx: it holds only the `ExecStartPre=` check, or
    /// is empty or removed and made again between `ExecStartPre=` and `ExecStart=`, while the
    /// port may already answer), but once the unit is `active` an empty cgroup is its end:
    /// systemd's default `KillMode=control-group` empties it when the main process dies.
    private func watch(_ index: Int, unit: String, nowMillis: Int) {
        if let pid = services[index].pid {
            if !SystemdUnit.isPopulated(unit) {
                let status = services[index].unitKilled ? -SIGKILL : Self.unknownUnitExit
                exited(index, pid: pid, status: status, nowMillis: nowMillis)
                // A unit that failed too often in a row refuses to start (StartLimitBurst);
                // the agent's back-off decides when to try again, not systemd's rate limit.
                _ = Spawner.spawn([SystemdUnit.systemctl, "reset-failed", unit])
            } else if kill(pid, 0) != 0, let main = SystemdUnit.mainPID(unit) {
                services[index].pid = main  // the unit replaced its main process (e.g. a reload)
            }
        } else if services[index].restartAt == nil, services[index].activeCheck == nil,
            nowMillis >= services[index].activeCheckAt, SystemdUnit.isPopulated(unit),
            Self.accepts(port: services[index].definition.port)
        {
            if case .success(let helper) = Spawner.spawn([SystemdUnit.systemctl, "is-active", "--quiet", unit]) {
                services[index].activeCheck = helper
            }
        } else if let asked = services[index].unitRequestedAt, nowMillis - asked > Self.unitStartTimeoutMillis {
            Console.say("\(unit) is not up \(nowMillis - asked) ms after the start request; asking again")
            start(index)
        }
    }

    /// `systemctl is-active` answered: the unit is up now, or is asked about again shortly.
    private func activeCheckDone(_ index: Int, isActive: Bool, nowMillis: Int) {
        services[index].activeCheck = nil
        guard case .unit(let unit) = services[index].definition.launch, services[index].pid == nil else { return }
        guard isActive, let main = SystemdUnit.mainPID(unit) else {
            services[index].activeCheckAt = nowMillis + Self.activeCheckIntervalMillis
            return
        }
        services[index].pid = main
        services[index].unitRequestedAt = nil
        services[index].unitKilled = false
        channel.serviceStarted(index, pid: UInt32(main), isRestart: services[index].starts > 0)
        services[index].starts += 1
        Console.say("service \(services[index].definition.name) runs as \(unit), main pid \(main)")
    }

    /// Reports a command service exited as soon as its process is doomed (a SIGKILL pending) or
    /// exiting, before `waitpid` can reap it: the kernel sends its sockets' FINs meanwhile, and
    /// the host's close fence must not take the service for running then (`ProcessEnd`). The
    /// reap follows as usual.
    private func reportEnding() {
        for index in services.indices where !services[index].endReported {
            guard case .command = services[index].definition.launch, let pid = services[index].pid,
                let stat = try? SmallFile.read("/proc/\(pid)/stat"),
                let status = ProcessEnd.waitStatus(stat: stat, status: try? SmallFile.read("/proc/\(pid)/status"))
            else { continue }
            services[index].endReported = true
            let code = Self.exitCode(waitStatus: status)
            channel.serviceExited(index, status: code)
            Console.say("service \(services[index].definition.name) (pid \(pid)) is ending (\(code)); reaped next")
        }
    }

    /// A wait status as the channel reports it: the exit code, or minus the signal's number.
    static func exitCode(waitStatus status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
    }

    private func exited(_ index: Int, pid: pid_t, status code: Int32, nowMillis: Int) {
        channel.serviceExited(index, status: code)
        services[index].endReported = false
        services[index].pid = nil
        services[index].listening = false
        services[index].reportedHung = false
        // A probe of the dead instance (in flight, or its failures) says nothing of the next one.
        services[index].probe = Probe()
        services[index].busy = BusyGate()
        services[index].cpuSample = nil
        let delay = min(5000, 500 * services[index].starts)
        services[index].restartAt = nowMillis + delay
        Console.say(
            "service \(services[index].definition.name) (pid \(pid)) exited with \(code); restart in \(delay) ms")
    }

    /// Runs the services' liveness probes (only for services that are up and listening) and
    /// reports a service hung, or answering again, the tick it is decided.
    func probe(nowMillis now: Int) {
        // A service restarted after a crash is probed again once it listens (the ready check
        // that first sets `listening` only runs while the agent starts).
        for index in services.indices where services[index].pid != nil && !services[index].listening {
            guard now >= services[index].probe.nextAt else { continue }
            services[index].listening = Self.accepts(port: services[index].definition.port)
            services[index].probe.postpone(until: now + Probe.intervalMillis)
        }
        var groups: [Int32: CPUUsage]?
        for index in services.indices where services[index].pid != nil && services[index].listening {
            if !services[index].probe.inFlight {
                guard now >= services[index].probe.nextAt else { continue }
                services[index].probe.start(port: services[index].definition.port, now: now)
            }
            let outcome = services[index].probe.step(now: now)
            if outcome == .pending { continue }
            // The CPU its processes used since the previous outcome: busy or idle while it failed.
            let usage = cpuUsage(index, groups: &groups)
            let previous = services[index].cpuSample
            services[index].cpuSample = usage.map { ($0, now) }
            switch outcome {
            case .pending:
                break
            case .alive:
                services[index].busy.answered()
                if services[index].reportedHung {
                    services[index].reportedHung = false
                    channel.serviceResponsive(index, true)
                    Console.say("service \(services[index].definition.name) answers again")
                }
            case .failed:
                let used: CPUUsage? = usage.flatMap { usage in previous.map { usage - $0.usage } }
                let ticksPerSecond = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
                let cpuMillis = used.map { Int($0.ticks * 1000 / ticksPerSecond) }
                let waitedMillis = used.map { Int($0.waitNanos / 1_000_000) }
                let window = now - (previous?.atMillis ?? now)
                let hung = services[index].busy.failed(
                    cpuMillis: cpuMillis, waitedMillis: waitedMillis ?? 0, windowMillis: window, atMillis: now,
                    failuresToReport: Probe.failuresToReport)
                let ran = cpuMillis.map(String.init) ?? "?"
                let waited = waitedMillis.map(String.init) ?? "?"
                Console.say(
                    "service \(services[index].definition.name) missed a probe; its processes ran \(ran) ms and waited for a CPU \(waited) ms of the last \(window) ms"
                )
                if !services[index].reportedHung, hung {
                    services[index].reportedHung = true
                    channel.serviceResponsive(index, false)
                    Console.say("service \(services[index].definition.name) does not answer its probe: reported hung")
                }
            }
        }
    }

    /// The user and system clock ticks the service's processes used so far, and the time they
    /// waited for a CPU: its process group's (a command leads its own), or its unit's cgroup's;
    /// nil when none can be read. `groups`: every group's, from one walk of /proc made by the
    /// first command service that needs it in this round of probes.
    private func cpuUsage(_ index: Int, groups: inout [Int32: CPUUsage]?) -> CPUUsage? {
        guard let pid = services[index].pid else { return nil }
        switch services[index].definition.launch {
        case .command:
            guard Self.usage("\(pid)") != nil else { return nil }
            if groups == nil { groups = Self.usageByGroup() }
            return groups?[pid] ?? CPUUsage()
        case .unit(let unit):
            let members = SystemdUnit.processes(unit).compactMap { Self.usage("\($0)") }
            return members.isEmpty ? nil : members.reduce(CPUUsage()) { $0 + $1.usage }
        }
    }

    /// One process's group and usage (a process with no schedstat waited for nothing known).
    private static func usage(_ process: String) -> (group: Int32, usage: CPUUsage)? {
        guard let (group, ticks) = (try? SmallFile.read("/proc/\(process)/stat")).flatMap(ProcessCPU.groupAndTicks)
        else { return nil }
        let wait = (try? SmallFile.read("/proc/\(process)/schedstat")).flatMap(ProcessCPU.waitNanos) ?? 0
        return (group, CPUUsage(ticks: ticks, waitNanos: wait))
    }

    /// Every process group's usage, summed over its processes.
    private static func usageByGroup() -> [Int32: CPUUsage] {
        guard let directory = opendir("/proc") else { return [:] }
        defer { closedir(directory) }
        var groups: [Int32: CPUUsage] = [:]
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if Int32(name) != nil, let member = usage(name) {
                groups[member.group] = (groups[member.group] ?? CPUUsage()) + member.usage
            }
        }
        return groups
    }

    /// Starts a command, or asks systemd to start a unit (`--no-block`: the tick must not wait
    /// for systemd; `watch` sees the unit come up). Starting a unit that already runs, as at
    /// boot when systemd started it first, changes nothing.
    private func start(_ index: Int) {
        services[index].restartAt = nil
        switch services[index].definition.launch {
        case .command(let arguments):
            switch Spawner.spawn(arguments) {
            case .success(let pid):
                services[index].pid = pid
                channel.serviceStarted(index, pid: UInt32(pid), isRestart: services[index].starts > 0)
                services[index].starts += 1
                Console.say("started service \(services[index].definition.name) as pid \(pid)")
            case .failure(let error):
                failedToStart(index, error)
            }
        case .unit(let unit):
            switch Spawner.spawn([SystemdUnit.systemctl, "start", "--no-block", unit]) {
            case .success:
                services[index].unitRequestedAt = Uptime.millis
            case .failure(let error):
                failedToStart(index, error)
            }
        }
    }

    private func failedToStart(_ index: Int, _ error: Spawner.SpawnError) {
        channel.serviceExited(index, status: 127)
        services[index].restartAt = Uptime.millis + 5000
        Console.say(error.description)
    }

    /// Whether the service's listener on the loopback `port` takes a connection now.
    private static func accepts(port: UInt16) -> Bool {
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = socket(AF_INET, flags, 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected == 0 { return true }
        // A loopback connect completes at once unless the listener's queue is full: never wait
        // long for it in the tick (blocking, it held the agent, and its heartbeat, for minutes).
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, Int32(acceptWaitMillis)) == 1 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0
    }

    /// How long a tick waits for a service's listener to take a connection (`accepts`).
    static let acceptWaitMillis = 10
}
