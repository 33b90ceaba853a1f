import FTVMChannel
import FTVMSystem
import Glibc
import SystemPackage

/// Runs the host's commands: health pings, clock resync after a resume, and fault injection.
struct CommandHandler {
    let channel: Channel
    let supervisor: Supervisor
    /// Commands posted before this agent started are not ours to run.
    private var handled: UInt64

    init(channel: Channel, supervisor: Supervisor) {
        self.channel = channel
        self.supervisor = supervisor
        self.handled = channel.lastPostedSequence
    }

    mutating func poll() {
        guard let posted = channel.pendingCommand(after: handled) else { return }
        handled = posted.sequence
        guard let command = posted.command else {
            channel.reply(to: posted.sequence, status: -1, text: "unknown command \(posted.rawCode)")
            return
        }
        let (status, text) = run(command, argument: posted.argument)
        channel.reply(to: posted.sequence, status: status, text: text)
        Console.say("command \(command) -> \(status) \(text)")
        if command == .agentExit { exit(0) }
    }

    private func run(_ command: AgentCommand, argument: UInt32) -> (Int32, String) {
        switch command {
        case .ping:
            return (0, "pong")
        case .kernelPanic:
            Console.say("injecting a kernel panic (sysrq c)")
            return attempt { () throws(Errno) in try SmallFile.write("/proc/sysrq-trigger", "c") }
        case .kernelHang:
            // With RT throttling off, a SCHED_FIFO 99 spinner owns the (single) vCPU: no task,
            // kernel thread or heartbeat runs again. Interrupts still fire; progress does not.
            Console.say("injecting a kernel hang (SCHED_FIFO spinner, rt throttling off)")
            try? SmallFile.write("/proc/sys/kernel/sched_rt_runtime_us", "-1")
            for _ in 0..<max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) {
                if case .failure(let error) = Spawner.spawn(
                    ["/bin/busybox", "sh", "-c", "while :; do :; done"], policy: .realtime(99))
                {
                    return (-1, error.description)
                }
            }
            return (0, "hanging")
        case .serviceCrash, .serviceHang:
            guard let pid = supervisor.pid(ofSlot: Int(argument)) else { return (-1, "no service in slot \(argument)") }
            return Self.signalService(pid, command == .serviceCrash ? SIGKILL : SIGSTOP)
        case .agentExit:
            return (0, "exiting")
        case .resync:
            return resync()
        case .networkDown:
            Console.say("injecting a network stall (eth0 down)")
            switch Spawner.spawn(["/bin/busybox", "ip", "link", "set", "eth0", "down"]) {
            case .success: return (0, "taking eth0 down")
            case .failure(let error): return (-1, error.description)
            }
        }
    }

    /// Sends `signal` to a service and every process it started. The spawner makes each service
    /// the leader of its own process group, so one `kill(-pgid)` reaches a multi-process server
    /// whole (nginx: the master and its worker). Signalling the leader alone falls short both
    /// ways: after SIGKILL the orphaned worker keeps the listening socket and goes on serving, so
    /// the restarted service fails with EADDRINUSE; after SIGSTOP the worker still answers the
    /// probe, so the hang is never reported. A service that moved itself into another process
    /// group is signalled alone: the agent signals no group the service does not lead. A
    /// single-process service gets the signal exactly as before.
    private static func signalService(_ pid: pid_t, _ signal: Int32) -> (Int32, String) {
        if getpgid(pid) == pid, kill(-pid, signal) == 0 { return (0, "signalled process group \(pid)") }
        return kill(pid, signal) == 0 ? (0, "signalled pid \(pid)") : (-1, "kill: \(Errno(rawValue: errno))")
    }

    /// Adopts the host's wall clock (a paused guest's clock lags) and announces the guest's
    /// address so switches and the client namespace learn where it now lives.
    private func resync() -> (Int32, String) {
        let nanos = channel.hostClockNanos
        if nanos > 0 {
            var now = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
            if clock_settime(CLOCK_REALTIME, &now) != 0 { return (-1, "clock_settime: \(Errno(rawValue: errno))") }
        }
        guard let address = Self.address() else { return (0, "clock set; no ftvm.ip to announce") }
        _ = Spawner.spawn(["/bin/busybox", "arping", "-U", "-c", "2", "-w", "1", "-I", "eth0", address])
        return (0, "clock set; announced \(address)")
    }

    /// The guest's IPv4 address from the kernel command line (`ftvm.ip=ADDR/PREFIX`).
    static func address() -> String? {
        guard let cmdline = try? SmallFile.read("/proc/cmdline") else { return nil }
        for word in cmdline.split(whereSeparator: { $0 == " " || $0 == "\n" }) where word.hasPrefix("ftvm.ip=") {
            return String(word.dropFirst("ftvm.ip=".count).prefix { $0 != "/" })
        }
        return nil
    }

    private func attempt(_ body: () throws(Errno) -> Void) -> (Int32, String) {
        do {
            try body()
            return (0, "done")
        } catch {
            return (-1, "\(error)")
        }
    }
}
