import FTVMWire
import Foundation

/// Every setting of a pair that an operator may choose, in one table: its key in a config file,
/// its command-line option (if it has one), the kind of value it takes and the range it must
/// be in. A config file and the command line both produce `PairSettings`, and one `resolve()`
/// checks them and builds the `PairConfig`, so a value is judged the same wherever it came from.
public enum SettingKey: String, CaseIterable, Sendable {
    case name
    /// The guest image directory (`images/build.sh`).
    case image
    /// An operator's libvirt domain to protect instead of booting an image (`ftvm protect`).
    case domain
    case serviceAddress = "network.service-address"
    case uplinkAddress = "network.uplink-address"
    case prefixLength = "network.prefix-length"
    case mtu = "network.mtu"
    case macAddress = "network.mac"
    case relayPriority = "network.relay-priority"
    case memoryMiB = "guest.memory-mib"
    case vcpus = "guest.vcpus"
    case bootTimeoutSeconds = "guest.boot-timeout-s"
    case tickMillis = "health.tick-ms"
    case missedTicks = "health.missed-ticks"
    case fence = "health.fence"
    case logMiB = "log.size-mib"
    case connectionBudgetMiB = "log.connection-budget-mib"
    case idleReclaimSeconds = "log.idle-reclaim-s"
    case httpPorts = "ports.http"
    /// HTTPS terminated on the host (`TLSSetting`): PUBLIC:GUEST ports, the PEM chain and key,
    /// and the terminator's own address on the service's subnet.
    case tlsPorts = "tls.ports"
    case tlsCertificate = "tls.cert"
    case tlsKey = "tls.key"
    case tlsSource = "tls.source"
    case metrics

    /// What a value must look like.
    public enum Kind: Sendable, Equatable {
        case integer(ClosedRange<Int>)
        case text
        /// A list of TCP ports, or the word `none` for an empty one.
        case ports
        /// A list of PUBLIC:GUEST port pairs (kept as text, `443:8081,8443:8080`).
        case portMaps
    }

    public var kind: Kind {
        switch self {
        case .prefixLength: .integer(8...30)
        // 576: the least every IPv4 host must take (RFC 791); 65000: jumbo enough for any
        // experiment, below the 65535 a tap takes (PairConfig.mtu).
        case .mtu: .integer(576...65000)
        case .memoryMiB: .integer(128...65536)
        case .vcpus: .integer(1...64)
        case .bootTimeoutSeconds: .integer(10...3600)
        case .tickMillis: .integer(10...10_000)
        case .missedTicks: .integer(2...1000)
        case .logMiB: .integer(1...16384)
        case .connectionBudgetMiB: .integer(1...16384)
        case .idleReclaimSeconds: .integer(1...(86400 * 7))
        case .relayPriority: .integer(0...99)
        case .httpPorts: .ports
        case .tlsPorts: .portMaps
        case .name, .image, .domain, .serviceAddress, .uplinkAddress, .macAddress, .fence, .metrics, .tlsCertificate,
            .tlsKey, .tlsSource:
            .text
        }
    }

    /// The command-line option that sets it, when there is one.
    public var option: String? {
        switch self {
        case .name: "--name"
        case .image: "--image"
        case .tickMillis: "--tick-ms"
        case .missedTicks: "--missed-ticks"
        case .fence: "--fence"
        case .logMiB: "--log-mib"
        case .connectionBudgetMiB: "--connection-budget-mib"
        case .idleReclaimSeconds: "--idle-reclaim-s"
        case .httpPorts: "--http-ports"
        case .metrics: "--metrics"
        case .mtu: "--mtu"
        case .tlsPorts: "--tls-port"
        case .tlsCertificate: "--tls-cert"
        case .tlsKey: "--tls-key"
        case .tlsSource: "--tls-source"
        case .domain, .serviceAddress, .uplinkAddress, .prefixLength, .macAddress, .memoryMiB, .vcpus,
            .bootTimeoutSeconds, .relayPriority:
            nil
        }
    }

    /// The key's place in a file: its section (nil at the top level) and its own name.
    public var section: String? { rawValue.contains(".") ? String(rawValue.split(separator: ".")[0]) : nil }
    public var leaf: String { String(rawValue.split(separator: ".").last!) }
}

/// Where a setting's value came from, so that an error points at it.
public enum SettingOrigin: Sendable, Equatable {
    case option(String)
    case file(path: String, line: Int, column: Int)
    /// The built-in default (only cross-checks between settings can find fault with one).
    case builtIn
}

/// A value as given, before it is checked.
public enum SettingValue: Sendable, Equatable {
    case integer(Int)
    case text(String)
    case ports([Int])
}

/// A set of settings from one place (a file or the command line), each with its origin.
public struct PairSettings: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var value: SettingValue
        public var origin: SettingOrigin
    }

    public private(set) var entries: [SettingKey: Entry] = [:]

    public init() {}

    public subscript(key: SettingKey) -> Entry? { entries[key] }

    public mutating func set(_ key: SettingKey, _ value: SettingValue, from origin: SettingOrigin) {
        entries[key] = Entry(value: value, origin: origin)
    }

    /// These settings with `options` laid over them: an option given on the command line wins
    /// over the file. The one exception is the name: a file that names another pair than
    /// `--name` is a mistake (the systemd unit's `/etc/ftvm/NAME.yaml` naming a different
    /// pair), not something to override.
    public func overridden(by options: PairSettings) throws(ConfigError) -> PairSettings {
        // The pair's identity is not overridden: a file and an option that disagree on it are
        // a mistake (a file for another pair, or for another domain).
        for (key, noun) in [(SettingKey.name, "names pair"), (.domain, "protects domain")] {
            if let file = self[key], let option = options[key], file.value != option.value {
                throw .invalidSetting(
                    key: key, origin: file.origin,
                    reason:
                        "\(noun) \(file.value.shown) but \(option.origin.shown) \(noun.split(separator: " ")[0]) \(option.value.shown); make them agree or drop the key"
                )
            }
        }
        var merged = self
        for (key, entry) in options.entries { merged.entries[key] = entry }
        return merged
    }

    /// The pair these settings describe: every value checked against its key's kind and range,
    /// and against the others where they depend on each other. Unset keys keep their defaults.
    public func resolve() throws(ConfigError) -> ResolvedSettings {
        let name = try text(.name) ?? PairConfig.defaultName
        var config: PairConfig
        do {
            config = try PairConfig(name: name)
        } catch {
            throw .invalidSetting(key: .name, origin: origin(.name), reason: error.description)
        }
        let domain = try text(.domain)
        if domain != nil, let image = entries[.image] {
            throw .invalidSetting(
                key: .image, origin: image.origin,
                reason: "a pair boots an image or protects a domain, not both: drop `image` or `domain`")
        }
        if let image = try text(.image) { config.imageDirectory = image }
        if let address = try address(.serviceAddress) { config.serviceAddress = address }
        if let address = try address(.uplinkAddress) { config.uplinkAddress = address }
        if let length = try integer(.prefixLength) { config.prefixLength = length }
        // A protected domain's clients are on its own network: there is no uplink address.
        if domain == nil { try checkSubnet(config) }
        if let mtu = try integer(.mtu) { config.mtu = mtu }
        if let mac = try text(.macAddress) {
            guard let parsed = MACAddress(mac), !parsed.isMulticast else {
                throw .invalidSetting(
                    key: .macAddress, origin: origin(.macAddress), reason: ConfigError.badMAC(mac).description)
            }
            config.macAddress = mac
        }
        if let priority = try integer(.relayPriority) { config.relayPriority = Int32(priority) }
        if let memory = try integer(.memoryMiB) { config.memoryMiB = memory }
        if let vcpus = try integer(.vcpus) { config.vcpus = vcpus }
        if let seconds = try integer(.bootTimeoutSeconds) { config.bootTimeoutSeconds = Double(seconds) }
        if let tick = try integer(.tickMillis) { config.health.tickMillis = tick }
        if let missed = try integer(.missedTicks) { config.health.missedTicks = missed }
        if let fence = try text(.fence) {
            guard let policy = FencePolicy(rawValue: fence) else {
                throw .invalidSetting(
                    key: .fence, origin: origin(.fence),
                    reason: "must be \(FencePolicy.allCases.map(\.rawValue).joined(separator: " or ")), not '\(fence)'")
            }
            config.fence = policy
        }
        let logMiB = try integer(.logMiB) ?? Self.defaultLogMiB
        config.setLogSize(mebibytes: logMiB)
        let budget = try integer(.connectionBudgetMiB) ?? Int(config.connectionBudgetBytes >> 20)
        guard budget <= logMiB else {
            throw .invalidSetting(
                key: .connectionBudgetMiB, origin: origin(.connectionBudgetMiB),
                reason: "must be at most the log's size (\(logMiB) MiB), not \(budget)")
        }
        config.connectionBudgetBytes = UInt64(budget) << 20
        if let seconds = try integer(.idleReclaimSeconds) {
            config.logPolicy.idleReclaimNanos = UInt64(seconds) * 1_000_000_000
        }
        if let ports = try ports(.httpPorts) { config.logPolicy.httpPorts = Set(ports.map { UInt16($0) }) }
        if let text = try text(.metrics) {
            guard let setting = MetricsSetting(parsing: text) else {
                throw .invalidSetting(
                    key: .metrics, origin: origin(.metrics),
                    reason: "'\(text)' is not HOST:PORT (IPv4, port 1-65535, e.g. 127.0.0.1:9477), 'auto' or 'none'")
            }
            config.metrics = setting
        }
        config.tls = try tls(config)
        return ResolvedSettings(
            config: config, domain: domain, serviceAddressGiven: entries[.serviceAddress] != nil)
    }

    /// A port list as the command line writes it (`80,8080`, `none`); text that is not one is
    /// kept as text, for `resolve()` to report.
    public static func ports(parsing text: String) -> SettingValue {
        if text == "none" { return .ports([]) }
        let fields = text.split(separator: ",", omittingEmptySubsequences: false)
        let ports = fields.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return ports.count == fields.count ? .ports(ports) : .text(text)
    }

    /// The log's default size: PairConfig's geometry (4096 records, 65536 chunks of 2 KiB).
    public static let defaultLogMiB = 128

    // MARK: Typed, checked access

    private func origin(_ key: SettingKey) -> SettingOrigin { entries[key]?.origin ?? .builtIn }

    private func text(_ key: SettingKey) throws(ConfigError) -> String? {
        guard let entry = entries[key] else { return nil }
        guard case .text(let text) = entry.value, !text.isEmpty else {
            throw .invalidSetting(key: key, origin: entry.origin, reason: "must be a non-empty string")
        }
        return text
    }

    private func integer(_ key: SettingKey) throws(ConfigError) -> Int? {
        guard let entry = entries[key] else { return nil }
        guard case .integer(let range) = key.kind, case .integer(let value) = entry.value else {
            throw .invalidSetting(key: key, origin: entry.origin, reason: "must be an integer")
        }
        guard range.contains(value) else {
            throw .invalidSetting(
                key: key, origin: entry.origin, reason: "must be \(range.lowerBound)-\(range.upperBound), not \(value)")
        }
        return value
    }

    private func ports(_ key: SettingKey) throws(ConfigError) -> [Int]? {
        guard let entry = entries[key] else { return nil }
        guard case .ports(let ports) = entry.value else {
            throw .invalidSetting(
                key: key, origin: entry.origin,
                reason: "\(entry.value.shown) is not a list of ports like 80,8080 or 'none'")
        }
        if let bad = ports.first(where: { !(1...65535).contains($0) }) {
            throw .invalidSetting(key: key, origin: entry.origin, reason: "\(bad) is not a port 1-65535")
        }
        return ports
    }

    private func address(_ key: SettingKey) throws(ConfigError) -> String? {
        guard let text = try text(key) else { return nil }
        guard IPv4Address(text) != nil else {
            throw .invalidSetting(key: key, origin: origin(key), reason: ConfigError.badAddress(text).description)
        }
        return text
    }

    /// HTTPS on the host: ports, certificate and key go together; the back address is a host of
    /// the service's subnet that is neither the service nor the uplink. The files themselves are
    /// checked where they are used (`TLSTerminator.check`).
    private func tls(_ config: PairConfig) throws(ConfigError) -> TLSSetting? {
        let parts: [SettingKey] = [.tlsPorts, .tlsCertificate, .tlsKey]
        let given = parts.filter { entries[$0] != nil }
        guard !given.isEmpty || entries[.tlsSource] != nil else { return nil }
        if let missing = parts.first(where: { entries[$0] == nil }) {
            let key = given.first ?? .tlsSource
            throw .invalidSetting(
                key: key, origin: origin(key),
                reason:
                    "HTTPS needs \(parts.map { $0.option ?? $0.rawValue }.joined(separator: ", ")) together; \(missing.option ?? missing.rawValue) (tls.\(missing.leaf) in a file) is missing"
            )
        }
        let maps: [TLSSetting.PortMap]
        switch TLSSetting.portMaps(parsing: try text(.tlsPorts) ?? "") {
        case .success(let parsed): maps = parsed
        case .failure(let problem):
            throw .invalidSetting(key: .tlsPorts, origin: origin(.tlsPorts), reason: problem.reason)
        }
        for key in [SettingKey.tlsCertificate, .tlsKey] {
            let path = try text(key) ?? ""
            guard path.hasPrefix("/") else {
                throw .invalidSetting(key: key, origin: origin(key), reason: "'\(path)' must be an absolute path")
            }
        }
        let back =
            try address(.tlsSource)
            ?? TLSSetting.defaultBackAddress(service: config.serviceAddress, prefixLength: config.prefixLength)
            ?? ""
        if let service = IPv4Address(config.serviceAddress), let source = IPv4Address(back) {
            let mask: UInt32 = ~0 << (32 - UInt32(config.prefixLength))
            let problem: String? =
                if source.rawValue & mask != service.rawValue & mask {
                    "\(back) is not in the service's /\(config.prefixLength) (\(config.serviceAddress))"
                } else if back == config.serviceAddress || (back == config.uplinkAddress && domainless) {
                    "\(back) is taken by the \(back == config.serviceAddress ? "service" : "uplink")"
                } else if source.rawValue & ~mask == 0 || source.rawValue & ~mask == ~mask {
                    "\(back) is the network or broadcast address of its /\(config.prefixLength)"
                } else {
                    nil
                }
            if let problem {
                throw .invalidSetting(
                    key: .tlsSource, origin: origin(.tlsSource),
                    reason: "the terminator's address \(problem); choose a free host of the subnet with --tls-source")
            }
        }
        return TLSSetting(
            ports: maps, certificatePath: try text(.tlsCertificate) ?? "", keyPath: try text(.tlsKey) ?? "",
            backAddress: back)
    }

    /// Whether these settings boot an image (a pair with an uplink address of its own).
    private var domainless: Bool { entries[.domain] == nil }

    /// The uplink (the clients' gateway) and the service must be two hosts of one subnet.
    private func checkSubnet(_ config: PairConfig) throws(ConfigError) {
        guard let service = IPv4Address(config.serviceAddress), let uplink = IPv4Address(config.uplinkAddress) else {
            return
        }
        let mask: UInt32 = config.prefixLength == 0 ? 0 : ~0 << (32 - UInt32(config.prefixLength))
        let host = ~mask
        let problem: String? =
            if service.rawValue == uplink.rawValue {
                "is the uplink's address too; the service and the uplink need one each"
            } else if service.rawValue & mask != uplink.rawValue & mask {
                "\(config.serviceAddress) and the uplink \(config.uplinkAddress) are not in one /\(config.prefixLength)"
            } else if service.rawValue & host == 0 || service.rawValue & host == host {
                "\(config.serviceAddress) is the network or broadcast address of its /\(config.prefixLength)"
            } else {
                nil
            }
        if let problem {
            let key: SettingKey = entries[.serviceAddress] != nil ? .serviceAddress : .uplinkAddress
            throw .invalidSetting(key: key, origin: origin(key), reason: problem)
        }
    }
}

/// A pair's checked settings (metrics included: `PairConfig.metrics`).
public struct ResolvedSettings: Sendable, Equatable {
    public var config: PairConfig
    /// The operator's domain the pair protects, when it does (the `domain` key).
    public var domain: String?
    /// Whether the service address was given (a protected domain needs its guest's address).
    public var serviceAddressGiven: Bool
}

extension SettingOrigin {
    /// How an error names the place: `--tick-ms`, `FILE:LINE:COLUMN`, or "the default".
    var shown: String {
        switch self {
        case .option(let option): option
        case .file(let path, let line, let column): "\(path):\(line):\(column)"
        case .builtIn: "the default"
        }
    }
}

extension SettingValue {
    /// The value as a command-line argument.
    public var argument: String {
        switch self {
        case .integer(let value): "\(value)"
        case .text(let text): text
        case .ports(let ports): ports.isEmpty ? "none" : ports.map(String.init).joined(separator: ",")
        }
    }

    /// The value as an error quotes it.
    var shown: String {
        if case .text(let text) = self { return "'\(text)'" }
        return argument
    }
}
