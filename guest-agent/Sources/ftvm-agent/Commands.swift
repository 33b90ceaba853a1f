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
                    ["/bin/sh", "-c", "while :; do :; done"], policy: .realtime(99))
                {
                    return (-1, error.description)
                }
            }
            return (0, "hanging")
        case .serviceCrash, .serviceHang:
            return supervisor.inject(command == .serviceCrash ? SIGKILL : SIGSTOP, slot: Int(argument))
        case .agentExit:
            return (0, "exiting")
        case .resync:
            return resync()
        case .networkDown:
            Console.say("injecting a network stall (every interface with an IPv4 address down)")
            return Network.takeDown()
        }
    }

    /// Adopts the host's wall clock (a paused guest's clock lags) and announces the guest's
    /// addresses so the relay, bridges and clients learn where they now live.
    private func resync() -> (Int32, String) {
        let nanos = channel.hostClockNanos
        if nanos > 0 {
            var now = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
            if clock_settime(CLOCK_REALTIME, &now) != 0 { return (-1, "clock_settime: \(Errno(rawValue: errno))") }
        }
        let (status, announced) = Network.announce()
        return (status, "clock set; \(announced)")
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
