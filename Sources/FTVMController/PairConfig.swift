import FTVMDataPlane
import Foundation

/// Everything that names or places one protected pair. Derived from the pair's name so that a
/// restarted daemon, `ftvm down` and a test find the same domains, files and namespace again.
public struct PairConfig: Sendable, Codable, Equatable {
    public static let defaultName = "demo"
    public static let defaultImageDirectory = "/var/lib/ftvm/images/default"

    public var name: String
    public var imageDirectory: String
    /// Guest memory. The demo image's initramfs (74 MiB unpacked with nginx and its 32 MiB file)
    /// unpacks into a tmpfs of half the RAM free at that moment: 256 MiB left 10 MiB free, 384
    /// leaves 73 (docs/image.md).
    public var memoryMiB: Int = 384
    public var vcpus: Int = 1
    /// The service address inside the client namespace, and the client side of the uplink.
    public var serviceAddress = "10.77.0.2"
    public var uplinkAddress = "10.77.0.1"
    public var prefixLength = 24
    /// The clients' link MTU (the uplink tap, and the guest's eth0): 1500, as on a real network.
    /// The links carry TSO super-frames whatever the MTU, so jumbo frames are an option, not a
    /// need (docs/relay.md has the measurements).
    public var mtu = PairConfig.defaultMTU
    public static let defaultMTU = 1500
    /// The relay thread's SCHED_FIFO priority; 0 leaves it a normal thread. Real-time, a woken
    /// relay does not wait for a CPU behind the guest's QEMU, which cost 25-32 us at each of the
    /// two wake-ups of an exchange on a 2-core host (docs/relay.md, "where a crossing's time goes").
    public var relayPriority: Int32 = 1
    /// Primary and backup share one identity: same MAC, same IP.
    public var macAddress = "52:54:00:77:00:02"
    /// How long a guest may take from start to "agent ready" before the pair gives up on it.
    public var bootTimeoutSeconds: Double = 180
    /// When the primary is judged failed.
    public var health = HealthPolicy()
    /// What happens to a failed primary once the backup runs.
    public var fence = FencePolicy.pause
    /// Where the daemon serves Prometheus metrics (docs/metrics.md).
    public var metrics = MetricsSetting.automatic
    /// HTTPS terminated on the host, when the pair serves it.
    public var tls: TLSSetting?
    /// Where libvirtd is; FTVM_LIBVIRT_URI overrides (tests point it at a dead socket).
    public var libvirtURI = ProcessInfo.processInfo.environment["FTVM_LIBVIRT_URI"] ?? "qemu:///system"

    public init(
        name: String = PairConfig.defaultName, imageDirectory: String = PairConfig.defaultImageDirectory
    ) throws(ConfigError) {
        try Self.validate(name: name)
        self.name = name
        self.imageDirectory = imageDirectory
    }

    /// Names become interface names (IFNAMSIZ is 16 with the NUL) and file names.
    public static func validate(name: String) throws(ConfigError) {
        let allowed = name.utf8.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-")
        }
        guard !name.isEmpty, name.utf8.count <= 10, allowed, name.first?.isLetter == true else {
            throw .badName(name)
        }
    }

    // MARK: Derived names

    public var namespace: String { "ftvm-\(name)" }
    public var namespacePath: String { "/run/netns/\(namespace)" }
    public var tapName: String { "ftvm-\(name)" }
    public var runDirectory: String { "/run/ftvm/\(name)" }
    public var controlSocketPath: String { "\(runDirectory)/control.sock" }
    public var pidFilePath: String { "\(runDirectory)/daemon.pid" }
    /// Held (flock) by the pair's daemon while it runs (`PairHost.lock`).
    public var lockFilePath: String { "\(runDirectory)/daemon.lock" }
    /// Where a daemon that gave up leaves its reason for `ftvm up` to print.
    public var failureFilePath: String { "\(runDirectory)/failure" }
    /// The takeover under way: which guest failed and why, for a daemon that finishes it after
    /// this one was killed (libvirt shows a fenced primary only as paused).
    public var recoveryCausePath: String { "\(runDirectory)/recovery.json" }
    /// The recoveries filed so far (their count and the last one): a restarted daemon reports them.
    public var filedRecoveriesPath: String { "\(runDirectory)/recoveries.json" }
    public static let logDirectory = "/var/log/ftvm"
    public var daemonLogPath: String { "\(Self.logDirectory)/\(name)-daemon.log" }
    /// HTTPS on the host (`TLSTerminator`): the two namespaces, and HAProxy's files.
    public var tlsFrontNamespace: String { "ftvm-\(name)-tlsf" }
    public var tlsBackNamespace: String { "ftvm-\(name)-tlsb" }
    public var haproxyConfigPath: String { "\(runDirectory)/haproxy.cfg" }
    public var haproxyPidPath: String { "\(runDirectory)/haproxy.pid" }
    public var haproxyLogPath: String { "\(Self.logDirectory)/\(name)-haproxy.log" }
    /// The certificate chain and key in one file, as HAProxy reads them (root-only).
    public var tlsBundlePath: String { "\(runDirectory)/tls.pem" }
    public var domainPrefix: String { "ftvm-\(name)-" }

    /// A protected operator domain's files: its definition as it was when protected (what
    /// `unprotect` compares against) and the guests' disk overlays.
    public static let pairsDirectory = "/var/lib/ftvm/pairs"
    public var pairDirectory: String { "\(Self.pairsDirectory)/\(name)" }
    public var operatorDefinitionPath: String { "\(pairDirectory)/operator.xml" }
    /// A protected domain's pair after `ftvm upgrade --disk/--domain`: the definition its guests
    /// are made from now (the operator's own is never changed); a restarted daemon uses it.
    public var upgradedDefinitionPath: String { "\(pairDirectory)/upgraded.xml" }
    /// The same during an upgrade, so a daemon killed meanwhile can finish it.
    public var upgradingDefinitionPath: String { "\(pairDirectory)/upgrading.xml" }
    func overlayPrefix(generation: Int) -> String { "\(domainName(generation: generation))-" }
    func overlayPath(generation: Int, target: String) -> String {
        "\(pairDirectory)/\(overlayPrefix(generation: generation))\(target).qcow2"
    }

    /// The FT-TCP connection log (host only; survives a daemon restart).
    public var logPath: String { "/dev/shm/\(domainPrefix)log" }
    /// The open responses' first bytes, beside the log, for a restarted daemon's range resumes.
    public var responseHeadsPath: String { "/dev/shm/\(domainPrefix)heads" }
    /// Log geometry: connection records and 2 KiB chunks of client bytes (128 MiB by default).
    public var logSlots = 4096
    public var logChunks = 65536
    public var logChunkSize = 2048
    /// What one connection may hold in the log (from its latest exchange boundary on) before it
    /// becomes unprotected: a quarter of the default log, so one upload cannot take it all.
    public var connectionBudgetBytes: UInt64 = 32 << 20
    /// How the relay bounds the log: HTTP ports (trimmed by framing) and the idle bound.
    public var logPolicy = SouthSide.Policy()

    /// Sets the log's size in MiB (whole 2 KiB chunks).
    public mutating func setLogSize(mebibytes: Int) {
        logChunks = mebibytes * (1 << 20) / logChunkSize
    }

    public func domainName(generation: Int) -> String { "\(domainPrefix)\(generation)" }
    public func channelPath(generation: Int) -> String { "/dev/shm/\(domainName(generation: generation))-chan" }
    public func channelName(generation: Int) -> String { "\(domainName(generation: generation))-chan" }
    public func consoleLogPath(generation: Int) -> String {
        "\(Self.logDirectory)/\(domainName(generation: generation)).console"
    }

    /// The guest's kernel command line: console on the serial port, no reboot on panic (the
    /// pvpanic event is the signal; the domain is preserved), and the address for /init.
    public var kernelCommandLine: String {
        "console=ttyS0 panic=0 quiet loglevel=4 ftvm.ip=\(serviceAddress)/\(prefixLength) ftvm.gw=\(uplinkAddress) ftvm.mtu=\(mtu) ftvm.hostname=\(name)"
    }
}

/// How a suspected primary is fenced. Either way its output is cut off at the relay first.
public enum FencePolicy: String, Sendable, Codable, CaseIterable {
    /// Pause it (about 20 ms) and keep it for inspection until the new backup is ready.
    case pause
    /// Destroy it at once (QEMU takes 1-2 s to exit; the takeover waits for that).
    case destroy
}

/// Bad input from the user: each case says what is wrong and what to do.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case badName(String)
    case missingImage(directory: String, file: String)
    case unreadableImage(path: String)
    case badMAC(String)
    case badAddress(String)
    case noBridge(String)
    /// A setting (from a file or an option) that is the wrong type or out of range.
    case invalidSetting(key: SettingKey, origin: SettingOrigin, reason: String)
    /// A config file's key that is not in the schema (`suggestion`: the nearest valid one).
    case unknownKey(path: String, line: Int, column: Int, key: String, suggestion: String?, valid: [String])
    /// A config file that is not well-formed YAML, or not a mapping at its top.
    case badFile(path: String, line: Int, column: Int, problem: String)
    /// A config file that cannot be read at all.
    case unreadableFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .badName(let name):
            "invalid pair name '\(name)': use 1-10 characters a-z, 0-9 and '-', starting with a letter (it becomes interface and domain names)"
        case .missingImage(let directory, let file):
            "no guest image at \(directory): \(file) is missing. Build one with `images/build.sh` (the quick start does), or pass --image DIR"
        case .unreadableImage(let path):
            "\(path) is not readable by others; libvirt's QEMU runs as libvirt-qemu and must read it: chmod a+r it and a+x its directories"
        case .badAddress(let text):
            "'\(text)' is not an IPv4 address like 10.77.0.2"
        case .noBridge(let name):
            "there is no host bridge '\(name)' (see `ip -d link show type bridge`)"
        case .badMAC(let text):
            "'\(text)' is not a unicast MAC address like 52:54:00:77:00:02"
        case .invalidSetting(_, .option(let option), let reason):
            "\(option): \(reason)"
        case .invalidSetting(let key, .file(let path, let line, let column), let reason):
            "\(path):\(line):\(column): \(key.rawValue): \(reason)"
        case .invalidSetting(let key, .builtIn, let reason):
            "\([key.option, key.rawValue].compactMap { $0 }.joined(separator: " / ")) (default): \(reason)"
        case .unknownKey(let path, let line, let column, let key, let suggestion, let valid):
            "\(path):\(line):\(column): unknown key '\(key)'"
                + (suggestion.map { "; did you mean '\($0)'?" } ?? "; valid keys here: \(valid.joined(separator: ", "))")
        case .badFile(let path, let line, let column, let problem):
            "\(path):\(line):\(column): \(problem)"
        case .unreadableFile(let path, let reason):
            "cannot read config file \(path): \(reason)"
        }
    }
}
