import FTVMSystem
import SystemPackage

/// Where the daemon serves its Prometheus metrics (`ftvm up --metrics`).
public enum MetricsSetting: Sendable, Codable, Equatable, CustomStringConvertible {
    /// No metrics endpoint (`--metrics none`).
    case off
    /// The default: 127.0.0.1 on the first free port of `automaticPorts`. Several pairs share a
    /// host, each with its own daemon, so the first takes 9477, the next 9478, and so on;
    /// `ftvm status` and the daemon log say which one a pair got.
    case automatic
    /// An address the operator chose: the daemon serves there or does not start.
    case at(IPv4Endpoint)

    public static let automaticHost: UInt32 = 0x7F00_0001
    public static let automaticPorts: ClosedRange<UInt16> = 9477...9486

    /// Reads what an operator wrote: `none`, `auto` (the default), or an IPv4 `HOST:PORT` (port
    /// 1-65535); nil otherwise.
    public init?(parsing text: String) {
        if text == "none" {
            self = .off
            return
        }
        if text == "auto" {
            self = .automatic
            return
        }
        guard let endpoint = IPv4Endpoint(text), endpoint.port != 0 else { return nil }
        self = .at(endpoint)
    }

    /// What `ftvm up` hands the daemon to mean the same (nil: the default, nothing to pass).
    public var argument: String? {
        switch self {
        case .off: "none"
        case .automatic: nil
        case .at(let endpoint): endpoint.description
        }
    }

    public var description: String {
        switch self {
        case .off: "none"
        case .automatic: "automatic (127.0.0.1:\(Self.automaticPorts.lowerBound)-\(Self.automaticPorts.upperBound))"
        case .at(let endpoint): endpoint.description
        }
    }

    /// Binds the listener this setting asks for (nil when off). An explicit address binds or
    /// throws; the automatic one takes the first free port of `automaticPorts`.
    public func bind(automaticPorts: [UInt16] = Array(Self.automaticPorts)) throws(MetricsError) -> TCPListener? {
        switch self {
        case .off:
            return nil
        case .at(let endpoint):
            do {
                return try TCPListener(endpoint)
            } catch {
                throw .cannotBind(endpoint, error)
            }
        case .automatic:
            for port in automaticPorts {
                do {
                    return try TCPListener(IPv4Endpoint(hostOrderAddress: Self.automaticHost, port: port))
                } catch .addressInUse {
                    continue
                } catch {
                    throw .cannotBind(IPv4Endpoint(hostOrderAddress: Self.automaticHost, port: port), error)
                }
            }
            throw .noFreeAutomaticPort(automaticPorts)
        }
    }
}

/// Why the metrics endpoint could not be set up; each says what to do.
public enum MetricsError: Error, CustomStringConvertible, Equatable {
    case cannotBind(IPv4Endpoint, Errno)
    case noFreeAutomaticPort([UInt16])

    public var description: String {
        switch self {
        case .cannotBind(let endpoint, let errno):
            "cannot serve metrics on \(endpoint): \(errno); choose another address with --metrics HOST:PORT, or --metrics none"
        case .noFreeAutomaticPort(let ports):
            "cannot serve metrics: every port of 127.0.0.1:\(ports.map(String.init).joined(separator: ",")) is taken (other pairs' daemons?); choose an address with --metrics HOST:PORT, or --metrics none"
        }
    }
}
