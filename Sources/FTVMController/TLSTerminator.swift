import FTVMDataPlane
import FTVMSystem
import FTVMWire
import Foundation
import Glibc
import Logging
import Synchronization
import SystemPackage

/// HTTPS terminated on the host, at the service's own address (docs/https.md).
///
/// Debian's HAProxy holds the TLS sessions, in a process of its own that outlives the daemon
/// (a restarted daemon adopts it by its pid file). It listens in the front namespace, whose tap
/// has the service's address and MAC: the relay sends it the clients' TCP segments to a public
/// TLS port. It speaks plain HTTP/1.1 to the guest from the back namespace, whose tap is one more
/// client of the relay: those connections are logged, trimmed and replayed like any client's,
/// so a failover or an upgrade is a pause for HAProxy and the TLS session never notices.
public final class TLSTerminator: Sendable {
    public let taps: Relay.TerminatorTaps
    private let config: PairConfig
    private let tls: TLSSetting
    private let logger: Logger
    /// HAProxy's pid (started, adopted from a previous daemon, or started again).
    private let pid: Mutex<pid_t>
    /// How often HAProxy was found gone and started again (`supervise`).
    private let restartCount = Atomic<Int>(0)
    public var restarts: Int { restartCount.load(ordering: .relaxed) }
    /// Held while HAProxy is started or stopped, so a restart never races a teardown.
    private static let starting = Mutex<Void>(())

    static let frontTap = "tlsf"
    static let backTap = "tlsb"

    /// Checks the setting's files before anything is made; returns warnings (an expiring
    /// certificate) to print. Throws what is wrong and what to do.
    public static func check(_ tls: TLSSetting) throws -> [String] {
        guard FileManager.default.isExecutableFile(atPath: haproxy) else {
            throw TLSError.noHAProxy
        }
        for (path, what) in [(tls.certificatePath, "certificate chain"), (tls.keyPath, "private key")] {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw TLSError.unreadable(path: path, what: what)
            }
        }
        var info = stat()
        if stat(tls.keyPath, &info) == 0, info.st_mode & 0o077 != 0 {
            throw TLSError.keyExposed(path: tls.keyPath, mode: info.st_mode & 0o777)
        }
        let certificateKey: String
        let privateKey: String
        do {
            certificateKey = try publicKey(certificatePath: tls.certificatePath)
        } catch {
            throw TLSError.notPEM(path: tls.certificatePath, what: "certificate")
        }
        do {
            privateKey = try HostCommand.run(["openssl", "pkey", "-in", tls.keyPath, "-pubout"])
        } catch {
            throw TLSError.notPEM(path: tls.keyPath, what: "private key (unencrypted)")
        }
        guard certificateKey == privateKey else {
            throw TLSError.keyMismatch(certificate: tls.certificatePath, key: tls.keyPath)
        }
        let end =
            (try? HostCommand.run(["openssl", "x509", "-in", tls.certificatePath, "-noout", "-enddate"]))?
            .replacingOccurrences(of: "notAfter=", with: "").trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        if (try? HostCommand.run(["openssl", "x509", "-in", tls.certificatePath, "-noout", "-checkend", "0"])) == nil {
            return ["the certificate \(tls.certificatePath) expired on \(end): clients will refuse it"]
        }
        if (try? HostCommand.run(["openssl", "x509", "-in", tls.certificatePath, "-noout", "-checkend", "2592000"]))
            == nil
        {
            return ["the certificate \(tls.certificatePath) expires on \(end), within 30 days"]
        }
        return []
    }

    /// The public key of the first certificate in a PEM file (a certificate, or the running
    /// terminator's bundle), in PEM, as `curl --pinnedpubkey` takes it from a file.
    public static func publicKey(certificatePath: String) throws -> String {
        try HostCommand.run(["openssl", "x509", "-in", certificatePath, "-noout", "-pubkey"])
    }

    /// Makes (or, for a restarted daemon, finds) the two namespaces and their taps, and starts
    /// HAProxy unless the one a previous daemon started still runs with the same config.
    init(config: PairConfig, tls: TLSSetting, logger: Logger) throws {
        guard let serviceMAC = MACAddress(config.macAddress), let service = IPv4Address(config.serviceAddress) else {
            throw ConfigError.badMAC(config.macAddress)
        }
        let backMAC = TLSSetting.backMAC(service: serviceMAC)
        self.config = config
        self.tls = tls
        self.logger = logger
        do {
            let front = try Self.side(
                namespace: config.tlsFrontNamespace, tap: Self.frontTap, mac: serviceMAC,
                address: config.serviceAddress, config: config)
            let back = try Self.side(
                namespace: config.tlsBackNamespace, tap: Self.backTap, mac: backMAC, address: tls.backAddress,
                config: config)
            taps = Relay.TerminatorTaps(
                front: front, back: back,
                route: TerminatorRoute(
                    service: service, publicPorts: Set(tls.ports.map(\.publicPort)), backMAC: backMAC))
            pid = Mutex(try Self.haproxy(config: config, tls: tls, logger: logger))
        } catch {
            Self.remove(config: config)
            throw error
        }
    }

    /// Checks every second, on a thread of its own, that HAProxy runs, and starts it again when it
    /// is gone (its TLS sessions are lost with it; new ones are served again), until `finished`
    /// (the pair is being taken down) says so.
    func supervise(finished: @escaping @Sendable () -> Bool) {
        Thread { [self] in
            CurrentThread.name("ftvm-tls-watch")
            while !finished() {
                sleep(1)
                guard Self.running(config: config) == nil else { continue }
                Self.starting.withLock { _ in
                    guard !finished() else { return }
                    var status: Int32 = 0
                    _ = waitpid(pid.withLock { $0 }, &status, WNOHANG)  // reaped, when it was our child
                    logger.error(
                        "TLS terminator gone: its TLS sessions are lost; starting it again",
                        metadata: ["pid": "\(pid.withLock { $0 })"])
                    // Counted as it begins: HAProxy writes its pid file (which `ftvm status`
                    // reports) before `haproxy` returns, and a status with the new pid must not
                    // show the old count (a CI run read it in between, under load).
                    restartCount.add(1, ordering: .relaxed)
                    do {
                        let started = try Self.haproxy(config: config, tls: tls, logger: logger)
                        pid.withLock { $0 = started }
                    } catch {
                        logger.error("TLS terminator could not be started again", metadata: ["error": "\(error)"])
                    }
                }
            }
        }.start()
    }

    /// One side: a namespace with loopback up, no IPv6, and a persistent tap with `address`.
    private static func side(
        namespace: String, tap name: String, mac: MACAddress, address: String, config: PairConfig
    ) throws -> TapDevice {
        let path = "/run/netns/\(namespace)"
        if !FileManager.default.fileExists(atPath: path) { try HostCommand.run(["ip", "netns", "add", namespace]) }
        let tap = try TapDevice(name: name, namespacePath: path, persistent: true, offload: true)
        let inside = ["ip", "-n", namespace]
        try HostCommand.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
        try HostCommand.run(inside + ["link", "set", "lo", "up"])
        try HostCommand.run(inside + ["link", "set", name, "address", mac.description, "mtu", "\(config.mtu)"])
        try HostCommand.run(inside + ["addr", "replace", "\(address)/\(config.prefixLength)", "dev", name])
        try HostCommand.run(inside + ["link", "set", name, "up"])
        return tap
    }

    static let haproxy = "/usr/sbin/haproxy"

    /// HAProxy's configuration for `tls`: one thread; at most 4096 connections (more wait in the
    /// listen queue); HTTP mode with one server connection per client
    /// connection (`http-reuse never`, so a session's requests stay on one logged connection),
    /// the client's address in X-Forwarded-For on every request (a replay that starts at a later
    /// exchange still carries it), TLS 1.2 and 1.3 with HAProxy's and OpenSSL's defaults, ALPN
    /// http/1.1 only (the relay follows HTTP/1.x framing), and timeouts longer than a replay's
    /// deadline, so a failover is a pause and never a timeout.
    static func configuration(config: PairConfig, tls: TLSSetting) -> String {
        var text = """
            # Written by ftvm for pair \(config.name); rewritten at each start.
            global
                maxconn 4096
                nbthread 1
                ssl-default-bind-options ssl-min-ver TLSv1.2
                tune.ssl.default-dh-param 2048

            defaults
                mode http
                option forwardfor
                http-reuse never
                timeout connect 60s
                timeout client 600s
                timeout server 600s
                timeout http-request 30s
                timeout http-keep-alive 600s
                timeout client-fin 30s
                timeout server-fin 30s

            """
        for map in tls.ports {
            text += """

                frontend tls-\(map.publicPort)
                    bind \(config.serviceAddress):\(map.publicPort) namespace \(config.tlsFrontNamespace) ssl crt \(config.tlsBundlePath) alpn http/1.1
                    default_backend guest-\(map.publicPort)

                backend guest-\(map.publicPort)
                    server guest \(config.serviceAddress):\(map.guestPort) namespace \(config.tlsBackNamespace)

                """
        }
        return text
    }

    /// Starts HAProxy, or adopts the one running with this very configuration.
    private static func haproxy(config: PairConfig, tls: TLSSetting, logger: Logger) throws -> pid_t {
        let text = configuration(config: config, tls: tls)
        let bundle =
            try String(contentsOfFile: tls.certificatePath, encoding: .utf8) + "\n"
            + String(contentsOfFile: tls.keyPath, encoding: .utf8)
        if let pid = running(config: config),
            (try? String(contentsOfFile: config.haproxyConfigPath, encoding: .utf8)) == text,
            (try? String(contentsOfFile: config.tlsBundlePath, encoding: .utf8)) == bundle
        {
            logger.notice("TLS terminator adopted", metadata: ["pid": "\(pid)"])
            return pid
        }
        stop(config: config)
        try writePrivate(bundle, to: config.tlsBundlePath)
        try writePrivate(text, to: config.haproxyConfigPath)
        do {
            try HostCommand.run([haproxy, "-c", "-q", "-f", config.haproxyConfigPath])
        } catch let failure as HostCommand.Failure {
            throw TLSError.refused(failure.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        // One thread, at a lower priority than the relay, the guests and the health loop: a
        // flood of handshakes costs HTTPS clients time, never the pair its heartbeat.
        let pid = try DetachedProcess.spawn(
            ["/usr/bin/nice", "-n", "10", haproxy, "-db", "-f", config.haproxyConfigPath],
            logPath: config.haproxyLogPath)
        try writePrivate("\(pid)\n", to: config.haproxyPidPath)
        // Up once it listens (the front's socket), or failed with its reason in the log.
        for _ in 0..<100 {
            if (try? HostCommand.run(["ip", "netns", "exec", config.tlsFrontNamespace, "ss", "-Htln"]))?.contains(
                ":\(tls.ports[0].publicPort) ") == true
            {
                logger.notice(
                    "TLS terminator started",
                    metadata: ["pid": "\(pid)", "ports": "\(tls.ports.map(\.description).joined(separator: ","))"])
                return pid
            }
            guard DetachedProcess.isRunning(pid) else { break }
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: config.haproxyLogPath, encoding: .utf8)) ?? ""
        kill(pid, SIGKILL)
        throw TLSError.refused(String(log.suffix(800)))
    }

    /// Writes a file only root may read (the key is in the bundle), mode 0600 from its creation.
    private static func writePrivate(_ text: String, to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw Errno(rawValue: errno)
        }
    }

    /// The HAProxy this pair's daemon started, if it still runs (checked by its command line, so
    /// a recycled pid is never taken for it).
    static func running(config: PairConfig) -> pid_t? {
        guard let text = try? String(contentsOfFile: config.haproxyPidPath, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            let commandLine = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
            commandLine.contains(config.haproxyConfigPath),
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            !stat.contains(") Z ")
        else { return nil }
        return pid
    }

    /// Ends the pair's HAProxy (by its pid, checked), and reaps it when it is our child.
    static func stop(config: PairConfig) {
        guard let pid = running(config: config) else { return }
        kill(pid, SIGTERM)
        for _ in 0..<100 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid || running(config: config) == nil { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// Ends HAProxy and removes the namespaces (their taps go with them) and the files.
    public static func remove(config: PairConfig) {
        starting.withLock { _ in stop(config: config) }
        for namespace in [config.tlsFrontNamespace, config.tlsBackNamespace]
        where FileManager.default.fileExists(atPath: "/run/netns/\(namespace)") {
            _ = try? HostCommand.run(["ip", "netns", "del", namespace])
        }
        for file in [config.haproxyConfigPath, config.haproxyPidPath, config.tlsBundlePath] {
            try? FileManager.default.removeItem(atPath: file)
        }
    }
}

/// What is wrong with a pair's HTTPS, and what to do.
public enum TLSError: Error, CustomStringConvertible {
    case noHAProxy
    case unreadable(path: String, what: String)
    case keyExposed(path: String, mode: mode_t)
    case notPEM(path: String, what: String)
    case keyMismatch(certificate: String, key: String)
    case refused(String)

    public var description: String {
        switch self {
        case .noHAProxy:
            "HTTPS needs HAProxy (\(TLSTerminator.haproxy)): apt-get install haproxy (scripts/prepare.sh installs it)"
        case .unreadable(let path, let what):
            "cannot read the \(what) \(path): no such file, or not readable by root"
        case .keyExposed(let path, let mode):
            "the private key \(path) is open to other users (mode \(String(mode, radix: 8))): chmod 600 \(path)"
        case .notPEM(let path, let what):
            "\(path) is not a PEM \(what)"
        case .keyMismatch(let certificate, let key):
            "the private key \(key) does not match the certificate \(certificate) (their public keys differ)"
        case .refused(let output):
            "HAProxy refused to start the TLS terminator: \(output)"
        }
    }
}
