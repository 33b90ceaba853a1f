import FTVMChannel
import FTVMSystem
import Glibc

/// One line of `/etc/ftvm/services`: `NAME PORT COMMAND ARGS...`.
struct ServiceDefinition: Equatable {
    var name: String
    var port: UInt16
    var arguments: [String]

    /// Parses the services file; `#` starts a comment. Bad lines are errors, never skipped: an
    /// image that silently runs fewer services than it lists would be "ready" while broken.
    static func parse(_ text: String) throws(ServiceFileError) -> [ServiceDefinition] {
        var services: [ServiceDefinition] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.prefix { $0 != "#" }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count >= 3, let port = UInt16(fields[1]), port > 0, fields[2].hasPrefix("/") else {
                throw ServiceFileError(line: number + 1, text: String(rawLine))
            }
            services.append(ServiceDefinition(name: fields[0], port: port, arguments: Array(fields[2...])))
        }
        return services
    }
}

struct ServiceFileError: Error, CustomStringConvertible {
    var line: Int
    var text: String
    var description: String {
        "services file line \(line) is not `NAME PORT /ABSOLUTE/COMMAND ARGS...`: \(text)"
    }
}

/// Starts the services, notices their death the tick it happens, restarts them with back-off,
/// and mirrors all of it into the channel for the host.
final class Supervisor {
    private struct Running {
        var definition: ServiceDefinition
        var pid: pid_t?
        var starts = 0
        var restartAt: Int?
        var listening = false
        var probe = Probe()
        var reportedHung = false
    }

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

    func pid(ofSlot index: Int) -> pid_t? {
        services.indices.contains(index) ? services[index].pid : nil
    }

    /// Reaps every exited child (services and helpers alike) and schedules service restarts.
    func reap(nowMillis: Int) {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            guard let index = services.firstIndex(where: { $0.pid == pid }) else { continue }
            let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
            channel.serviceExited(index, status: code)
            services[index].pid = nil
            services[index].listening = false
            services[index].reportedHung = false
            let delay = min(5000, 500 * services[index].starts)
            services[index].restartAt = nowMillis + delay
            Console.say(
                "service \(services[index].definition.name) (pid \(pid)) exited with \(code); restart in \(delay) ms")
        }
        for index in services.indices {
            if let due = services[index].restartAt, due <= nowMillis { start(index) }
        }
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
        for index in services.indices where services[index].pid != nil && services[index].listening {
            if !services[index].probe.inFlight {
                guard now >= services[index].probe.nextAt else { continue }
                services[index].probe.start(port: services[index].definition.port, now: now)
            }
            switch services[index].probe.step(now: now) {
            case .pending:
                break
            case .alive:
                if services[index].reportedHung {
                    services[index].reportedHung = false
                    channel.serviceResponsive(index, true)
                    Console.say("service \(services[index].definition.name) answers again")
                }
            case .failed:
                if !services[index].reportedHung, services[index].probe.consecutiveFailures >= Probe.failuresToReport {
                    services[index].reportedHung = true
                    channel.serviceResponsive(index, false)
                    Console.say("service \(services[index].definition.name) does not answer its probe: reported hung")
                }
            }
        }
    }

    private func start(_ index: Int) {
        services[index].restartAt = nil
        switch Spawner.spawn(services[index].definition.arguments) {
        case .success(let pid):
            services[index].pid = pid
            channel.serviceStarted(index, pid: UInt32(pid), isRestart: services[index].starts > 0)
            services[index].starts += 1
            Console.say("started service \(services[index].definition.name) as pid \(pid)")
        case .failure(let error):
            channel.serviceExited(index, status: 127)
            services[index].restartAt = Uptime.millis + 5000
            Console.say(error.description)
        }
    }

    private static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
