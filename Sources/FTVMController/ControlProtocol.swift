import FTVMDataPlane
import FTVMSystem
import Foundation
import Synchronization
import SystemPackage

/// What the `ftvm` CLI asks a running daemon. One JSON object per line, one answer per request;
/// each request carries exactly what it needs.
public enum ControlRequest: Codable, Sendable, Equatable {
    case status
    /// Tear the pair down and exit.
    case down
    /// Put a fault into the primary (`service`: which one, for the service faults). With
    /// `whenProtectedSeconds`, wait up to that long for the pair to be protected and inject only
    /// then.
    case inject(Fault, service: String? = nil, whenProtectedSeconds: Double? = nil)
    /// Hand the service to the backup on purpose.
    case failover
    /// List the logged connections.
    case connections
    /// Move the service to a new version: how long open connections may finish on the old guest
    /// before they move by replay, and how long the new guest may take to be ready (nil: the
    /// pair's boot timeout).
    case upgrade(UpgradeTarget, drainTimeoutSeconds: Double = 30, readyTimeoutSeconds: Double? = nil)
}

public struct ControlResponse: Codable, Sendable {
    public var error: String?
    public var message: String?
    public var status: PairStatus?
    public var connections: [ConnectionStatus]?

    public init(
        error: String? = nil, message: String? = nil, status: PairStatus? = nil, connections: [ConnectionStatus]? = nil
    ) {
        self.error = error
        self.message = message
        self.status = status
        self.connections = connections
    }
}

/// One guest as `ftvm status` shows it.
public struct GuestStatus: Codable, Sendable, Equatable {
    public var domain: String
    public var role: String
    public var generation: Int
    /// libvirt's view: running, paused, shutoff, crashed, …
    public var state: String
    public var heartbeat: UInt64
    /// Milliseconds since the daemon saw the heartbeat change (nil: not sampled yet).
    public var heartbeatAgeMillis: Double?
    public var agent: String
    public var imageVersion: String
    public var services: [ServiceStatus]
    /// The guest's link tap on the host (`ftvgN`), for `ip -s link show` and the like.
    public var link: String?
}

public struct ServiceStatus: Codable, Sendable, Equatable {
    public var name: String
    public var port: UInt32
    public var state: String
    public var pid: UInt32
    public var restarts: UInt32
    public var lastExit: Int32
}

/// The whole pair as `ftvm status` shows it.
public struct PairStatus: Codable, Sendable {
    public var name: String
    public var phase: String
    /// True when a primary serves and a paused backup is ready to take over.
    public var protected: Bool
    /// The clients' network namespace ("" when the pair protects an operator's domain).
    public var namespace: String
    /// Where the clients are: "netns NAME", or "bridge NAME" (a protected domain's network).
    public var clients: String?
    public var serviceAddress: String
    public var servicePorts: [UInt32]
    public var accelerator: String
    public var daemonPID: Int32
    public var health: HealthPolicy
    public var fence: String
    public var guests: [GuestStatus]
    public var relay: Relay.Counters
    public var log: LogStatus?
    public var recoveries: Int
    public var lastRecovery: RecoveryRecord?
    /// The image new guests boot from, and the latest upgrade.
    public var imageDirectory: String?
    public var imageVersion: String?
    public var upgrade: UpgradeRecord?
    /// Why the pair is unprotected, while it is (nil otherwise).
    public var degradedReason: String?
    /// What the daemon did about changes made to its guests outside ftvm.
    public var handled: HandledActions?
    /// Where Prometheus scrapes the daemon (`http://ADDRESS/metrics`); nil: metrics are off.
    public var metricsAddress: String?
    /// HTTPS on the host: `443:8081,…` and the terminator's pid; nil: none.
    public var tlsPorts: String?
    public var tlsPID: Int32?
    /// How often the daemon found the terminator gone and started it again.
    public var tlsRestarts: Int?
    /// Connections whose clients spoke TLS to the guest itself, reset by replays (they cannot be
    /// carried over: docs/https.md).
    public var tlsInGuestResets: UInt64?
    /// What the relay thread runs under: `SCHED_FIFO 1`, or `normal (why)`.
    public var relayScheduling: String?
}

/// Guests changed outside ftvm (by hand with virsh, or by libvirt) and what the daemon did.
public struct HandledActions: Codable, Sendable, Equatable {
    /// The backup was found running and paused again.
    public var backupsRepaused = 0
    /// The backup was found destroyed, shut off, crashed or undefined, and replaced.
    public var backupsReplaced = 0
    /// Takeovers whose backup could not run, served by a freshly booted guest instead.
    public var freshPrimaries = 0
    /// Recoveries a restarted daemon found half done (or not started) and finished.
    public var finishedByRestart = 0

    public init() {}
}

/// Failures talking to a daemon.
public enum ControlError: Error, CustomStringConvertible {
    case notRunning(name: String)
    case io(path: String, errno: Errno)
    case badReply(String)
    case daemon(String)

    public var description: String {
        switch self {
        case .notRunning(let name):
            "no ftvm daemon is running for pair '\(name)': start one with `ftvm up --name \(name)`"
        case .io(let path, let errno):
            "talking to the daemon at \(path) failed: \(errno)"
        case .badReply(let text):
            "the daemon answered something that is not a control reply: \(text.prefix(200))"
        case .daemon(let message):
            message
        }
    }
}

/// The CLI's side of the control socket.
public enum ControlClient {
    public static func send(
        _ request: ControlRequest, to config: PairConfig, timeoutSeconds: Int = 600
    ) throws -> ControlResponse {
        let path = config.controlSocketPath
        let stream: StreamSocket
        do {
            stream = try StreamSocket.connect(to: path)
        } catch let error where error == .noSuchFileOrDirectory || error == .connectionRefused {
            throw ControlError.notRunning(name: config.name)
        } catch {
            throw ControlError.io(path: path, errno: error)
        }
        stream.setTimeout(seconds: timeoutSeconds)
        do {
            try stream.write(Array(try JSONEncoder().encode(request)) + [UInt8(ascii: "\n")])
            guard let line = try stream.readLine() else { throw ControlError.badReply("(connection closed)") }
            do {
                return try JSONDecoder().decode(ControlResponse.self, from: Data(line))
            } catch {
                throw ControlError.badReply(String(decoding: line, as: UTF8.self))
            }
        } catch let error as Errno {
            throw ControlError.io(path: path, errno: error)
        }
    }
}

/// The daemon's side: answers requests one connection at a time on its own thread.
final class ControlServer: Sendable {
    private let listener: UnixListener
    /// True while a request is being answered (so the daemon does not exit mid-answer).
    private let busy = Mutex<Bool>(false)

    init(path: String) throws(Errno) {
        listener = try UnixListener(path: path)
    }

    /// Serves until `close()`; `handle` runs on the server thread.
    func start(handle: @escaping @Sendable (ControlRequest) -> ControlResponse) {
        let thread = Thread { [self] in
            while let stream = try? listener.accept() {
                busy.withLock { $0 = true }
                defer { busy.withLock { $0 = false } }
                stream.setTimeout(seconds: 30)
                guard let line = try? stream.readLine() else { continue }
                let response: ControlResponse
                if let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(line)) {
                    response = handle(request)
                } else {
                    response = ControlResponse(
                        error: "malformed control request: \(String(decoding: line.prefix(200), as: UTF8.self))")
                }
                if let data = try? JSONEncoder().encode(response) {
                    try? stream.write(Array(data) + [UInt8(ascii: "\n")])
                }
            }
        }
        thread.name = "ftvm-control"
        thread.start()
    }

    func close() { listener.shutdown() }

    /// Waits (up to a few seconds) for the answer in progress to be written.
    func waitUntilIdle() {
        for _ in 0..<500 where busy.withLock({ $0 }) { usleep(10_000) }
    }
}
