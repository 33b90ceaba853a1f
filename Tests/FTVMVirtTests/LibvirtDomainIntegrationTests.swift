import FTVMVirt
import FTVMWire
import Foundation
import Synchronization
import XCTest

/// Defines, starts, pauses, resumes, destroys and undefines a real domain on qemu:///system and
/// checks the lifecycle events for each step. Needs root and a running libvirtd; set
/// FTVM_SKIP_LIBVIRT=1 to skip. The guest boots no kernel (firmware only: SeaBIOS idles), so no
/// image is needed. Everything it creates is named ftvm-virt-test-<random> (its link tap
/// ftvg<random>) and removed in tearDown, also after a failure.
final class LibvirtDomainIntegrationTests: XCTestCase {
    private var connection: LibvirtConnection?
    private var domainName = ""
    private var logDirectory = ""
    /// From a range the daemon's random picks rarely hit; the tap exists only during the test.
    private let link = GuestLink(id: UInt16.random(in: 50000...59999))

    override func setUpWithError() throws {
        try XCTSkipIf(ProcessInfo.processInfo.environment["FTVM_SKIP_LIBVIRT"] == "1", "FTVM_SKIP_LIBVIRT=1")
        connection = try LibvirtConnection()
        domainName = "ftvm-virt-test-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        logDirectory = NSTemporaryDirectory() + domainName
        // virtlogd (root) writes the console log but does not create its directory.
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        // libvirt opens the link's tap (managed='no'); the daemon would have made it.
        try runIP(["tuntap", "add", "dev", link.tap, "mode", "tap"])
    }

    private func runIP(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "ip \(arguments.joined(separator: " "))")
    }

    override func tearDownWithError() throws {
        defer {
            try? FileManager.default.removeItem(atPath: logDirectory)
            try? FileManager.default.removeItem(atPath: "/dev/shm/\(domainName)-chan")
            try? runIP(["link", "del", "dev", link.tap])
            connection = nil
        }
        guard let connection, let domain = try connection.domainIfDefined(named: domainName) else { return }
        if try domain.isActive() { try domain.destroy() }
        try domain.undefine()
    }

    func spec() -> DomainSpec {
        let shm = SharedMemoryDevice(name: domainName + "-chan", sizeMiB: 1)
        return DomainSpec(
            name: domainName, virtType: .qemu, memoryMiB: 64, vcpus: 1, boot: nil,
            mac: MACAddress("52:54:00:fe:00:01")!,
            network: link, sharedMemory: shm,
            consoleLogPath: logDirectory + "/console.log",
            metadata: GuestMetadata(
                role: .backup, pairName: "virt-test", generation: 1, imageDirectory: "/nonexistent",
                imageVersion: "test", link: link.id, sharedMemoryPath: shm.path))
    }

    func testLifecycleStatesEventsAndMetadata() throws {
        let connection = try XCTUnwrap(connection)
        let recorder = EventRecorder()
        let subscription = try connection.subscribeLifecycleEvents { [domainName] domain, event in
            if domain == domainName { recorder.record(event) }
        }
        defer { subscription.cancel() }

        let spec = spec()
        let domain = try connection.define(spec)
        XCTAssertEqual(domain.name, domainName)
        XCTAssertTrue(domain.isPersistent)
        try recorder.wait(for: .defined(.added))
        XCTAssertEqual(try domain.state(), .shutoff(reason: 0))
        XCTAssertEqual(try domain.spec().metadata, spec.metadata)
        XCTAssertNil(domain.qemuProcessID())

        let listed = try connection.listDomains().first { $0.name == domainName }
        XCTAssertEqual(listed?.uuid, domain.uuid)
        XCTAssertEqual(listed?.state.isActive, false)

        try domain.start()
        try recorder.wait(for: .started(.booted))
        guard case .running = try domain.state() else { return XCTFail("not running: \(try domain.state())") }
        let pid = try XCTUnwrap(domain.qemuProcessID(), "no pid file for a running domain")
        XCTAssertEqual(kill(pid, 0), 0, "QEMU pid \(pid) from the pid file is not alive")

        try domain.suspend()
        try recorder.wait(for: .suspended(.paused))
        XCTAssertEqual(try domain.state(), .pausedByUser)

        // A live + config write on an active domain: visible now and after the next boot.
        var metadata = spec.metadata
        metadata.role = .primary
        metadata.generation = 2
        try domain.setGuestMetadata(metadata)
        XCTAssertEqual(try domain.guestMetadata(), metadata)
        XCTAssertEqual(try DomainXML.guestMetadata(inDomainXML: try domain.xmlDescription(inactive: true)), metadata)

        try domain.resume()
        try recorder.wait(for: .resumed(.unpaused))
        XCTAssertEqual(try domain.state(), .running(reason: 5))  // VIR_DOMAIN_RUNNING_UNPAUSED

        XCTAssertThrowsError(try domain.resume()) { error in
            guard case VirtError.operationInvalid(let operation, let domainName, _) = error else {
                return XCTFail("expected operationInvalid, got \(error)")
            }
            XCTAssertEqual(operation, "resume")
            XCTAssertEqual(domainName, self.domainName)
        }

        try domain.destroy()
        try recorder.wait(for: .stopped(.destroyed))
        XCTAssertEqual(try domain.state(), .shutoff(reason: 2))  // VIR_DOMAIN_SHUTOFF_DESTROYED
        XCTAssertEqual(try domain.guestMetadata(), metadata, "config copy of the metadata was lost")

        // Config-only write path (domain shut off).
        metadata.role = .retired
        try domain.setGuestMetadata(metadata)
        XCTAssertEqual(try connection.domain(named: domainName).guestMetadata(), metadata)

        XCTAssertThrowsError(try domain.suspend()) { error in
            guard case VirtError.operationInvalid = error else { return XCTFail("\(error)") }
        }

        try domain.undefine()
        try recorder.wait(for: .undefined)
        XCTAssertNil(try connection.domainIfDefined(named: domainName))
        XCTAssertThrowsError(try connection.domain(named: domainName)) { error in
            XCTAssertEqual(error as? VirtError, .domainNotFound(self.domainName))
        }
    }

    /// A guest kernel panic reaches us as `crashed(.panicked)`, the domain is preserved in state
    /// "crashed (panicked)", and the serial console reached the log file. Opt-in, because it needs
    /// a kernel and an initrd whose /init loads `pvpanic` + `pvpanic-mmio` and then panics
    /// (`echo c > /proc/sysrq-trigger`): set FTVM_TEST_PANIC_KERNEL and FTVM_TEST_PANIC_INITRD.
    func testGuestPanicIsReportedAndPreserved() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let kernel = environment["FTVM_TEST_PANIC_KERNEL"], let initrd = environment["FTVM_TEST_PANIC_INITRD"]
        else {
            throw XCTSkip("set FTVM_TEST_PANIC_KERNEL and FTVM_TEST_PANIC_INITRD to run")
        }
        let connection = try XCTUnwrap(connection)
        let recorder = EventRecorder()
        let subscription = try connection.subscribeLifecycleEvents { [domainName] domain, event in
            if domain == domainName { recorder.record(event) }
        }
        defer { subscription.cancel() }

        var spec = spec()
        spec.memoryMiB = 256
        spec.boot = KernelBoot(
            kernelPath: kernel, initrdPath: initrd, commandLine: "console=ttyS0 panic=0 rdinit=/init")
        let domain = try connection.define(spec)
        try domain.start()
        try recorder.wait(for: .crashed(.panicked), timeout: 120)
        XCTAssertEqual(try domain.state(), .panicked)
        let log = try String(contentsOfFile: spec.consoleLogPath, encoding: .utf8)
        XCTAssertTrue(log.contains("Kernel panic"), "console log lacks the panic:\n\(log.suffix(2000))")
    }

    /// A domain that is not ftvm's has no metadata rather than an error.
    func testDomainWithoutMetadata() throws {
        let connection = try XCTUnwrap(connection)
        let xml =
            "<domain type='qemu'><name>\(domainName)</name><memory unit='MiB'>32</memory><os><type>hvm</type></os></domain>"
        let domain = try connection.define(xml: xml)
        XCTAssertNil(try domain.guestMetadata())
        XCTAssertThrowsError(try connection.define(xml: "<domain type='qemu'><name>\(domainName)</name></domain>")) {
            error in
            guard case VirtError.domainXMLRejected = error else {
                return XCTFail("expected domainXMLRejected, got \(error)")
            }
        }
    }
}

/// Collects lifecycle events from libvirt's event thread for a test to wait on.
final class EventRecorder: Sendable {
    private let events = Mutex<[LifecycleEvent]>([])

    func record(_ event: LifecycleEvent) { events.withLock { $0.append(event) } }

    /// Waits until `event` has been seen (TCG start-up can take seconds on a loaded machine).
    func wait(
        for event: LifecycleEvent, timeout: TimeInterval = 30, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if events.withLock({ $0.contains(event) }) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let seen = events.withLock { $0 }
        XCTFail("no \(event) within \(timeout) s; saw \(seen)", file: file, line: line)
        throw XCTSkip("aborting after missing event")
    }
}
