import ArgumentParser
import FTVMController
import FTVMVirt
import FTVMWire
import Foundation
import Logging

struct Protect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Protect a libvirt domain you defined: run it as a primary and a paused backup on its own network.",
        discussion: """
            The domain must be shut off, or `--shutdown` shuts it down first (ACPI, then ftvm waits \
            up to --shutdown-timeout seconds; a guest that does not stop is left running and nothing \
            is made) and reports how long the service was away. Its definition is never changed: each guest is a copy with a \
            throwaway qcow2 overlay over every writable disk (your file becomes a read-only base), the \
            relay's NIC in place of yours (same MAC), and ftvm's channel, panic device and metadata. The \
            relay's uplink goes where your NIC was (a libvirt network or a host bridge). The guest must \
            run the ftvm agent (docs/protect.md). `ftvm unprotect DOMAIN` gives the domain back.
            """)

    @Argument(help: "The libvirt domain (virsh list --all); or `domain:` in the --config file.")
    var domain: String?

    @OptionGroup var settings: SettingsOptions

    @Option(
        name: .long,
        help:
            "The guest's address on its network, ADDR/PREFIX (e.g. 192.168.122.50/24); or network.service-address and prefix-length in the config file."
    )
    var address: String?

    @Option(name: .long, help: "Seconds to wait for the pair to become protected.")
    var timeout: Double = 600

    @Flag(name: .long, help: "Shut a running domain down cleanly (ACPI) first, then protect it.")
    var shutdown = false

    @Option(name: .long, help: "Seconds --shutdown waits for the guest to stop before it gives up.")
    var shutdownTimeout: Double = 120

    func run() throws {
        let resolved = try settings.resolve(
            adding: try ProtectTarget.settings(domain: domain, from: "the DOMAIN argument", address: address),
            defaultName: domain)
        guard let domain = resolved.domain else {
            throw ValidationError(
                "name the domain to protect: `ftvm protect DOMAIN`, or `domain:` in the --config file")
        }
        try ProtectTarget.requireAddress(resolved)
        let config = resolved.config
        if let status = try? ControlClient.send(ControlRequest.status, to: config).status {
            print("pair '\(config.name)' is already up (daemon pid \(status.daemonPID))")
            StatusPrinter.print(status)
            return
        }
        // Everything a user can fix is checked before anything is made.
        var template = try ProtectTarget.template(of: domain, config: config, mayRun: shutdown)
        let away = try template.running ? ProtectTarget.shutDown(domain, config: config, timeout: shutdownTimeout) : nil
        if away != nil { template = try ProtectTarget.template(of: domain, config: config, mayRun: false) }
        if let other = ProtectTarget.pair(protecting: domain), other != config.name {
            throw CommandFailure("domain \(domain) is already protected by pair '\(other)'")
        }
        try FileManager.default.createDirectory(atPath: config.pairDirectory, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: config.operatorDefinitionPath) {
            try template.domain.xml.write(toFile: config.operatorDefinitionPath, atomically: true, encoding: .utf8)
        }
        let address = "\(config.serviceAddress)/\(config.prefixLength)"
        do {
            let status = try DaemonLauncher.start(
                config: config, image: false,
                daemonArguments: ["--protect", domain, "--address", address] + settings.arguments, timeout: timeout
            ) { serving in
                guard let away else { return }
                print(
                    String(
                        format:
                            "ftvm: the service was away %.1f s (shutdown %.1f s, then the primary's boot to agent ready)",
                        Date().timeIntervalSince(away.began), away.stopped.timeIntervalSince(away.began)))
            }
            print("clients reach \(status.serviceAddress) on \(status.clients ?? "?"), as before")
        } catch {
            try? FileManager.default.removeItem(atPath: config.pairDirectory)
            throw error
        }
    }
}

struct Unprotect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the pair protecting a domain and start the domain as you defined it.")

    @Argument(help: "The protected libvirt domain.")
    var domain: String

    @Option(name: .long, help: "The pair's name, when it cannot be found from the domain.")
    var name: String?

    @Flag(name: .long, help: "Leave the domain shut off.")
    var noStart = false

    func run() throws {
        guard let pairName = name ?? ProtectTarget.pair(protecting: domain) else {
            throw CommandFailure(
                "no pair protects domain \(domain) (nothing under \(PairConfig.pairsDirectory)); see `ftvm status --name NAME`"
            )
        }
        let config = try ProtectTarget.config(name: pairName)
        let saved = try? String(contentsOfFile: config.operatorDefinitionPath, encoding: .utf8)
        let virt: LibvirtConnection
        do {
            virt = try LibvirtConnection(uri: config.libvirtURI)
        } catch {
            throw CommandFailure("\(error)")
        }
        do {
            _ = try ControlClient.send(ControlRequest.down, to: config, timeoutSeconds: 120)
        } catch ControlError.notRunning {
            PairCleanup.removeAll(config: config, virt: virt, logger: Logger(label: "ftvm.unprotect"))
        }
        print("ftvm: pair '\(config.name)' removed")
        do {
            let found = try virt.domain(named: domain)
            let current = try found.xmlDescription(inactive: true)
            if let saved {
                print(
                    current == saved
                        ? "ftvm: the definition of \(domain) is exactly as it was when protected"
                        : "ftvm: warning: the definition of \(domain) changed while it was protected (not by ftvm)")
            }
            if !noStart {
                try found.start()
                print("ftvm: \(domain) started")
            }
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}

/// What `protect` and the daemon it starts share: names, the address, and the template.
enum ProtectTarget {
    static func config(name: String) throws -> PairConfig {
        do {
            return try PairConfig(name: name)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The domain (named by `origin`) and `--address ADDR/PREFIX` as settings, for
    /// `PairSettings.resolve()` to check like the file's `domain` and `network.*` keys.
    static func settings(domain: String?, from origin: String, address: String?) throws -> PairSettings {
        var settings = PairSettings()
        if let domain { settings.set(.domain, .text(domain), from: .option(origin)) }
        if let address {
            let parts = address.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 else {
                throw ValidationError("--address must be the guest's IPv4 address and prefix, like 192.168.122.50/24")
            }
            settings.set(.serviceAddress, .text(parts[0]), from: .option("--address"))
            settings.set(
                .prefixLength, Int(parts[1]).map(SettingValue.integer) ?? .text(parts[1]), from: .option("--address"))
        }
        return settings
    }

    /// A protected domain needs its guest's address: `--address`, or the file's service address.
    static func requireAddress(_ resolved: ResolvedSettings) throws {
        guard resolved.domain == nil || resolved.serviceAddressGiven else {
            throw ValidationError(
                "give the guest's address on its network: --address ADDR/PREFIX, or network.service-address in the config file"
            )
        }
    }

    /// The operator's domain as read from libvirt, and whether it runs now.
    struct Template {
        var domain: OperatorDomain
        var running: Bool
    }

    /// The operator's domain, read from libvirt and checked: shut off (or, with `mayRun`,
    /// running, for `--shutdown`), and protectable.
    static func template(of domain: String, config: PairConfig, mayRun: Bool) throws -> Template {
        do {
            let virt = try LibvirtConnection(uri: config.libvirtURI)
            let found = try virt.domain(named: domain)
            let template = try OperatorDomain(xml: try found.xmlDescription(inactive: true))
            // A guest made earlier by this pair is fine; the operator's own domain must not run.
            let running = try found.isActive() && (try? found.guestMetadata()) == nil
            if running, !mayRun {
                throw CommandFailure(
                    "domain \(domain) is running: shut it down first (`virsh shutdown \(domain)`, or `ftvm protect \(domain) --shutdown`). ftvm runs it from its disks as read-only bases, which nothing may write meanwhile"
                )
            }
            for disk in template.disks where !FileManager.default.isReadableFile(atPath: disk.path) {
                throw CommandFailure(
                    "disk \(disk.target) of \(domain) is \(disk.path), which does not exist or cannot be read")
            }
            return Template(domain: template, running: running)
        } catch let error as CommandFailure {
            throw error
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// When `--shutdown` asked the running domain to stop, and when it had.
    struct Shutdown {
        var began: Date
        var stopped: Date
    }

    /// Shuts the running domain down cleanly (ACPI) and waits until it is shut off; a guest that
    /// does not stop within `timeout` is left as it is, and nothing is made.
    static func shutDown(_ domain: String, config: PairConfig, timeout: Double) throws -> Shutdown {
        let began = Date()
        do {
            let found = try LibvirtConnection(uri: config.libvirtURI).domain(named: domain)
            try found.shutdown()
            print("ftvm: shutting \(domain) down (ACPI), waiting up to \(Int(timeout)) s")
            while Date().timeIntervalSince(began) < timeout {
                if try !found.isActive() {
                    let stopped = Date()
                    print(String(format: "ftvm: %@ shut off after %.1f s", domain, stopped.timeIntervalSince(began)))
                    return Shutdown(began: began, stopped: stopped)
                }
                usleep(200_000)
            }
        } catch {
            throw CommandFailure("cannot shut \(domain) down: \(error)")
        }
        throw CommandFailure(
            "domain \(domain) did not shut down within \(Int(timeout)) s (does its guest handle ACPI power buttons?); it still runs and nothing was made: stop it yourself (`virsh destroy \(domain)`) or raise --shutdown-timeout"
        )
    }

    /// The pair whose saved definition names `domain`, if any.
    static func pair(protecting domain: String) -> String? {
        let pairs = (try? FileManager.default.contentsOfDirectory(atPath: PairConfig.pairsDirectory)) ?? []
        return pairs.sorted().first { pair in
            guard
                let saved = try? String(
                    contentsOfFile: "\(PairConfig.pairsDirectory)/\(pair)/operator.xml", encoding: .utf8)
            else { return false }
            return (try? OperatorDomain(xml: saved))?.name == domain
        }
    }
}
