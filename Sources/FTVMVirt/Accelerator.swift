import Glibc

/// How QEMU executes guest code; becomes the libvirt domain type (`<domain type='kvm|qemu'>`).
///
/// `.qemu` is TCG, QEMU's binary translator: slow but works everywhere. The build machines have a
/// `/dev/kvm` that is a paravirtual backend and cannot boot a stock kernel, so the device alone is
/// not enough evidence — the CPU must also advertise hardware virtualization (vmx or svm).
public enum Accelerator: String, Sendable, CaseIterable, CustomStringConvertible {
    case kvm
    case qemu

    public var description: String { rawValue }

    /// The value of libvirt's `<domain type=…>` attribute.
    public var domainType: String { rawValue }

    /// The environment variable that overrides detection (`kvm`, `qemu` or `auto`).
    public static let overrideVariable = "FTVM_ACCEL"

    /// `.kvm` when the host has a KVM device *and* the CPU flags include vmx (Intel) or svm (AMD).
    public static func detect(cpuinfo: String, kvmDeviceExists: Bool) -> Accelerator {
        guard kvmDeviceExists else { return .qemu }
        return cpuinfoHasHardwareVirtualization(cpuinfo) ? .kvm : .qemu
    }

    /// Whether any `flags` line of `/proc/cpuinfo` text lists vmx or svm.
    ///
    /// Only the exact `flags` key counts: Intel hosts also have a `vmx flags` line, whose
    /// entries describe VMX sub-features and are no evidence that VMX itself is usable.
    public static func cpuinfoHasHardwareVirtualization(_ cpuinfo: String) -> Bool {
        for line in cpuinfo.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmed()
            guard key == "flags" else { continue }
            let flags = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
            if flags.contains("vmx") || flags.contains("svm") { return true }
        }
        return false
    }

    /// Resolves `choice` on this host: reads `/proc/cpuinfo` and checks `/dev/kvm` only for `.auto`.
    public static func resolve(_ choice: AcceleratorChoice) -> Accelerator {
        switch choice {
        case .forced(let accelerator):
            return accelerator
        case .auto:
            return detect(cpuinfo: readProcFile("/proc/cpuinfo"), kvmDeviceExists: access("/dev/kvm", F_OK) == 0)
        }
    }

    /// Reads ``overrideVariable`` from `environment` (the process environment when `nil`) and
    /// resolves it on this host.
    ///
    /// - Throws: ``VirtError/invalidAccelerator(_:)`` when the variable holds an unknown value, so a
    ///   typo does not silently fall back to the (much slower, or unbootable) other accelerator.
    public static func fromEnvironment(_ environment: [String: String]? = nil) throws(VirtError) -> Accelerator {
        let value = environment.map { $0[overrideVariable] } ?? getenv(overrideVariable).map { String(cString: $0) }
        return resolve(try AcceleratorChoice(parsing: value ?? ""))
    }

    /// Reads a /proc file to the end (its size is reported as 0, so read until EOF); "" on error.
    private static func readProcFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// What the operator asked for: pick automatically, or force one accelerator.
public enum AcceleratorChoice: Sendable, Equatable, CustomStringConvertible {
    case auto
    case forced(Accelerator)

    /// Parses `kvm`, `qemu` (also `tcg`) or `auto`, case-insensitively; empty means `auto`.
    public init(parsing text: String) throws(VirtError) {
        switch text.trimmed().lowercased() {
        case "", "auto": self = .auto
        case "kvm": self = .forced(.kvm)
        case "qemu", "tcg": self = .forced(.qemu)
        default: throw VirtError.invalidAccelerator(text)
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .forced(let accelerator): return accelerator.rawValue
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing whitespace (Foundation stays out of this module: its
    /// ICU headers clash with the ones libxml2 includes).
    func trimmed() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
