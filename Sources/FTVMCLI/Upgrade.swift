import ArgumentParser
import FTVMController
import Foundation

struct Upgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace the running service with a new version, without dropping a connection.",
        discussion: """
            Boots a guest from the new version (--image for a pair of ftvm's images; --disk or \
            --domain for a protected libvirt domain) and waits for its agent. New connections then go \
            to it while open ones finish on the old primary; those still open after --drain-timeout \
            are moved to the new guest by replay. The old guests are retired and a fresh backup is \
            booted from the new version. If the new guest does not become ready, nothing changes. \
            A protected domain's own definition is never changed: the pair runs the new version \
            until `ftvm down`; point your domain at it (`virsh edit`) to keep it.
            """)

    @Option(name: .long, help: "The new guest image directory (built by images/build.sh).")
    var image: String?

    @Option(
        name: .long,
        help: "For a protected domain: a new base disk (absolute path) in place of its first writable disk.")
    var disk: String?

    @Option(
        name: .long,
        help:
            "For a protected domain: your shut-off libvirt domain with the new version's definition (same MAC and network)."
    )
    var domain: String?

    @OptionGroup var pair: PairOptions

    @Option(
        name: .long,
        help: "Seconds open connections may take to finish on the old primary before they are moved by replay.")
    var drainTimeout: Double = 30

    @Option(name: .long, help: "Seconds the new guest may take to report ready.")
    var readyTimeout: Double = 60

    func validate() throws {
        guard [image, disk, domain].compactMap({ $0 }).count == 1 else {
            throw ValidationError("name the new version: exactly one of --image DIR, --disk FILE and --domain NAME")
        }
        guard drainTimeout >= 0, drainTimeout <= 86_400 else {
            throw ValidationError("--drain-timeout must be 0-86400 seconds")
        }
        guard readyTimeout >= 1, readyTimeout <= 3600 else {
            throw ValidationError("--ready-timeout must be 1-3600 seconds")
        }
    }

    func run() throws {
        var directory: String?
        if let image {
            do {
                directory = try GuestImage(directory: image).directory
            } catch {
                throw CommandFailure("\(error)")
            }
        }
        let target: UpgradeTarget =
            if let directory {
                .image(directory)
            } else if let disk {
                .disk(URL(fileURLWithPath: disk).standardizedFileURL.path)
            } else {
                .domain(domain ?? "")
            }
        let started = try send(
            .upgrade(target, drainTimeoutSeconds: drainTimeout, readyTimeoutSeconds: readyTimeout), pair: pair)
        print("ftvm: \(started.message ?? "upgrade started")")
        let record = try follow()
        printSummary(record)
        if record.step == .failed { throw CommandFailure("upgrade failed: \(record.errors.joined(separator: "; "))") }
    }

    /// Prints each step as it starts and the drain's countdown, until the upgrade ends.
    private func follow() throws -> UpgradeRecord {
        var lastStep: UpgradeRecord.Step?
        var lastLeft = -1
        let deadline = Date().addingTimeInterval(readyTimeout + drainTimeout + 600)
        while Date() < deadline {
            guard let record = try send(ControlRequest.status, pair: pair).status?.upgrade else {
                throw CommandFailure("the daemon lost track of the upgrade")
            }
            if record.step != lastStep {
                lastStep = record.step
                print("  \(Self.describe(record.step, record))")
            }
            if record.step == .draining, record.connectionsLeft != lastLeft {
                lastLeft = record.connectionsLeft
                print("    connections left to drain: \(record.connectionsLeft) of \(record.connectionsAtSwitch)")
            }
            if record.finished { return record }
            usleep(200_000)
        }
        throw CommandFailure("the upgrade did not finish in time; see `ftvm status --name \(pair.name)`")
    }

    static func describe(_ step: UpgradeRecord.Step, _ record: UpgradeRecord) -> String {
        switch step {
        case .booting: "booting a guest from \(record.image) (\(record.toVersion))"
        case .draining:
            "new connections go to \(record.newPrimary ?? "the new guest"); draining the old primary (at most \(record.drainTimeoutSeconds) s)"
        case .moving: "moving the connections still open by replay"
        case .retiring: "retiring the old primary and backup"
        case .reprotecting: "booting a fresh backup from the new version"
        case .done: "done"
        case .failed: "failed"
        }
    }

    private func printSummary(_ record: UpgradeRecord) {
        let total = record.totalMillis.map { "\($0) ms" } ?? "?"
        print("upgrade \(record.fromVersion) -> \(record.toVersion): \(record.step.rawValue) in \(total)")
        print(
            "  connections: \(record.connectionsAtSwitch) open at the switch, \(record.drained) drained, \(record.movedAtBoundary) moved between exchanges, \(record.replayed) replayed, \(record.reset) reset"
        )
        if let failure = record.oldPrimaryFailure {
            print("  the old primary failed during the drain (\(failure)): its connections were moved at once")
        }
        if !record.phases.isEmpty {
            print("  phases: \(record.phases.map { "\($0.name) \($0.millis) ms" }.joined(separator: ", "))")
        }
        print("  errors: \(record.errors.isEmpty ? "none" : record.errors.joined(separator: "; "))")
    }
}
