import CFTVMShim
import FTVMAgentKit
import FTVMChannel
import FTVMSystem
import Glibc

/// The guest agent's main loop. It runs at real-time priority so that a busy service cannot
/// starve the heartbeat: a missed beat must mean the kernel is in trouble, not that it is busy.
enum Agent {
    static let tickMillis: UInt32 = 20
    /// The services file when no `--config` is given (the initramfs image's /init passes none).
    static let defaultServicesFile = "/etc/ftvm/services"
    static let versionFile = "/etc/ftvm/version"

    static func main() {
        signal(SIGPIPE, SIG_IGN)
        let arguments = Array(CommandLine.arguments.dropFirst())
        let servicesFile: String
        if arguments.isEmpty {
            servicesFile = defaultServicesFile
        } else if arguments.count == 2, arguments[0] == "--config" {
            servicesFile = arguments[1]
        } else {
            Console.say("usage: ftvm-agent [--config SERVICES-FILE] (default \(defaultServicesFile))")
            exit(2)
        }
        Console.say("starting (pid \(getpid()), services from \(servicesFile))")
        let channel = ChannelDevice.attach()
        channel.agentPID = UInt32(getpid())
        channel.tickMillis = tickMillis
        channel.imageVersion = ((try? SmallFile.read(versionFile)) ?? "unknown").trimmed
        channel.agentState = .starting
        if (try? Syscall.negativeErrno { ftvm_set_realtime(50) }) == nil {
            Console.say("cannot run at real-time priority; heartbeats may lag under load")
        }

        let definitions: [ServiceDefinition]
        do {
            definitions = try ServiceDefinition.parse(try SmallFile.read(servicesFile))
        } catch {
            Console.say("cannot use \(servicesFile): \(error)")
            channel.agentState = .failed
            definitions = []
        }
        let supervisor = Supervisor(definitions: definitions, channel: channel)
        supervisor.startAll()

        var commands = CommandHandler(channel: channel, supervisor: supervisor)
        let trims = TrimInbox(channel: channel)
        var next = timespec()
        clock_gettime(CLOCK_MONOTONIC, &next)
        while true {
            var wall = timespec()
            clock_gettime(CLOCK_REALTIME, &wall)
            channel.beat(guestClockNanos: UInt64(wall.tv_sec) * 1_000_000_000 + UInt64(wall.tv_nsec))
            let now = Uptime.millis
            supervisor.reap(nowMillis: now)
            supervisor.probe(nowMillis: now)
            if channel.agentState == .starting, !definitions.isEmpty, supervisor.allListening {
                channel.agentState = .ready
                Console.say("ready version=\(channel.imageVersion)")
            }
            commands.poll()
            trims.drain(nowMillis: now)
            advance(&next, byMillis: tickMillis)
            // An absolute deadline: a late tick does not push every later tick back.
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nil) == EINTR {}
        }
    }

    private static func advance(_ time: inout timespec, byMillis millis: UInt32) {
        time.tv_nsec += Int(millis) * 1_000_000
        while time.tv_nsec >= 1_000_000_000 {
            time.tv_nsec -= 1_000_000_000
            time.tv_sec += 1
        }
        // After a long pause (the backup is kept suspended), do not try to catch up tick by tick.
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        if time.tv_sec < now.tv_sec - 1 { time = now }
    }
}
