import Foundation
import XCTest

/// `ftvm protect` of an operator's own domain: the Debian disk guest of images/build-disk.sh,
/// defined with `virsh define` from Fixtures/operator-domain.xml (written as an operator would,
/// nothing of ftvm's in it) on an isolated libvirt network with no host address. A client in a
/// namespace joined to that network by a veth downloads through the relay at MTU 1500.
final class ProtectTests: XCTestCase {
    private let domain = "itprot"
    private let network = "itprot-net"
    private let bridge = "itprot0"
    private let client = "itprot-cl"
    private let clientVeth = ("itprot-v0", "itprot-v1")
    private let mac = "52:54:00:7d:15:42"
    /// The address images/build-disk.sh gave the guest (prepare.sh builds it so).
    private let guestAddress = "10.78.0.2"
    private let clientAddress = "10.78.0.254"
    private let work = NSTemporaryDirectory() + "ftvm-protect-\(UUID().uuidString)"

    private var disk: String {
        ProcessInfo.processInfo.environment["FTVM_DISK_IMAGE"] ?? "/var/lib/ftvm/images/disk/disk.qcow2"
    }

    private func virsh(_ arguments: String...) throws -> Harness.Output {
        try Harness.run(["virsh", "-c", "qemu:///system"] + arguments)
    }

    private func must(_ arguments: [String]) throws {
        let output = try Harness.run(arguments)
        XCTAssertEqual(output.status, 0, "\(arguments.joined(separator: " ")): \(output.combined)")
    }

    private func fixture(_ name: String, _ values: [String: String]) throws -> String {
        var text = try String(
            contentsOf: Harness.repository.appendingPathComponent("Tests/IntegrationTests/Fixtures/\(name)"),
            encoding: .utf8)
        for (key, value) in values { text = text.replacingOccurrences(of: "@\(key)@", with: value) }
        let path = "\(work)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    override func setUpWithError() throws {
        try Harness.requireIntegration()
        guard FileManager.default.fileExists(atPath: disk) else {
            throw XCTSkip("no disk guest at \(disk): scripts/prepare.sh builds it (images/build-disk.sh)")
        }
        cleanUp()
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let base = String(disk.dropLast(".qcow2".count))
        let networkXML = try fixture("operator-network.xml", ["NAME": network, "BRIDGE": bridge])
        let domainXML = try fixture(
            "operator-domain.xml",
            [
                "NAME": domain, "DISK": disk, "KERNEL": "\(base).vmlinuz", "INITRD": "\(base).initrd",
                "NETWORK": network, "MAC": mac, "CONSOLE": "\(work)/console.log",
            ])
        try must(["virsh", "-c", "qemu:///system", "net-define", networkXML])
        try must(["virsh", "-c", "qemu:///system", "net-start", network])
        try must(["virsh", "-c", "qemu:///system", "define", domainXML])
        // The client: a namespace on the bridge through a veth; the host side has no address.
        try must(["ip", "netns", "add", client])
        try must(["ip", "link", "add", clientVeth.0, "type", "veth", "peer", "name", clientVeth.1])
        try must(["ip", "link", "set", clientVeth.1, "netns", client])
        try must(["ip", "link", "set", clientVeth.0, "master", bridge, "up"])
        try must(["ip", "-n", client, "addr", "add", "\(clientAddress)/24", "dev", clientVeth.1])
        try must(["ip", "-n", client, "link", "set", clientVeth.1, "up"])
        try must(["ip", "-n", client, "link", "set", "lo", "up"])
    }

    override func tearDownWithError() throws {
        guard ProcessInfo.processInfo.environment["FTVM_INTEGRATION"] == "1" else { return }
        cleanUp()
        XCTAssertEqual(try Harness.leftovers(of: domain), [], "the pair left things behind")
    }

    private func cleanUp() {
        _ = try? Harness.run([Harness.ftvm, "down", "--name", domain])
        _ = try? virsh("destroy", domain)
        _ = try? virsh("undefine", domain)
        _ = try? virsh("net-destroy", network)
        _ = try? virsh("net-undefine", network)
        _ = try? Harness.run(["ip", "netns", "del", client])
        _ = try? Harness.run(["ip", "link", "del", clientVeth.0])
        try? FileManager.default.removeItem(atPath: work)
    }

    /// The disk guest's 64 MiB `splitmix-64M.bin` into `file`, paced at `rate` so a fault or an
    /// upgrade lands mid-download.
    /// `https`: over the pair's TLS terminator (port 443) instead, trusting `certificate`'s CA.
    private func startDownload(
        to file: String, rate: String, maxTime: Int, https certificate: Harness.TestCertificate? = nil
    ) throws -> Process {
        let download = Process()
        download.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let url =
            certificate == nil ? "http://\(guestAddress)/splitmix-64M.bin" : "https://\(guestAddress)/splitmix-64M.bin"
        download.arguments =
            [
                "ip", "netns", "exec", client, "curl", "-sS", "--fail", "--max-time", "\(maxTime)", "--limit-rate",
                rate, "-o", file, url,
            ] + (certificate.map { ["--cacert", $0.ca] } ?? [])
        try download.run()
        return download
    }

    private func curl(_ arguments: [String]) throws -> Harness.Output {
        try Harness.run(["ip", "netns", "exec", client, "curl", "-sS", "--fail"] + arguments)
    }

    /// What cannot be protected is refused with the reason, and nothing is made.
    func testRefusalsChangeNothing() throws {
        let before = try virsh("dumpxml", "--inactive", domain).stdout
        let missing = try Harness.run([Harness.ftvm, "protect", domain])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.combined.contains("--address"), missing.combined)
        let bad = try Harness.run([
            Harness.ftvm, "protect", "no-such-domain", "--name", "itprotx", "--address", "10.78.0.2/24",
        ])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.combined.contains("no libvirt domain named 'no-such-domain'"), bad.combined)
        // A second NIC: refused, with the reason, and the definition untouched.
        let twoNICs = before.replacingOccurrences(
            of: "</devices>",
            with: "<interface type='network'><source network='\(network)'/><model type='virtio'/></interface></devices>"
        )
        try twoNICs.write(toFile: "\(work)/two.xml", atomically: true, encoding: .utf8)
        try must(["virsh", "-c", "qemu:///system", "define", "\(work)/two.xml"])
        let refused = try Harness.run([Harness.ftvm, "protect", domain, "--address", "\(guestAddress)/24"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.combined.contains("2 network interfaces"), refused.combined)
        XCTAssertTrue(refused.combined.contains("nothing was changed"), refused.combined)
        XCTAssertEqual(try Harness.leftovers(of: domain), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/var/lib/ftvm/pairs/\(domain)"))
    }

    /// A running domain is refused without `--shutdown`; with it, ftvm shuts the domain down
    /// cleanly (ACPI), protects it, says how long the service was away, and the pair serves.
    func testProtectShutsARunningDomainDownFirst() throws {
        try must(["virsh", "-c", "qemu:///system", "start", domain])
        var served = false
        for _ in 0..<120 where !served {
            served = try curl(["-m", "2", "-o", "/dev/null", "http://\(guestAddress)/"]).status == 0
            if !served { sleep(1) }
        }
        XCTAssertTrue(served, "the operator's domain serves before it is protected")
        let refused = try Harness.run([Harness.ftvm, "protect", domain, "--address", "\(guestAddress)/24"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.combined.contains("--shutdown"), refused.combined)
        XCTAssertEqual(try Harness.virshDomains()[domain], "running", "a refusal leaves the domain running")
        XCTAssertEqual(try Harness.leftovers(of: domain), [])

        let protect = try Harness.ftvm(["protect", domain, "--address", "\(guestAddress)/24", "--shutdown"])
        XCTAssertTrue(protect.stdout.contains("shut off after"), protect.combined)
        let away = try XCTUnwrap(
            protect.stdout.split(separator: "\n").first { $0.contains("the service was away") }, protect.combined)
        print("protect-shutdown-figures: \(away)")
        XCTAssertEqual(try Harness.virshDomains()[domain], "shut off", "the operator's own domain does not run")
        XCTAssertEqual(try Harness.status(domain)["protected"] as? Bool, true)
        let page = try curl(["-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://\(guestAddress)/"])
        XCTAssertEqual(page.stdout, "200", "the pair serves: \(page.combined)")
    }

    /// `ftvm upgrade --disk` of a protected domain, version 1 to 2, with a download and a
    /// keep-alive session open: the download finishes byte-exact, and the session's next
    /// /version.txt, on the same connection, is answered by version 2.
    func testUpgradeToANewDisk() throws {
        let newDisk = "/var/lib/ftvm/images/disk-v2/disk.qcow2"
        XCTAssertTrue(FileManager.default.fileExists(atPath: newDisk), "scripts/prepare.sh builds \(newDisk)")
        try Harness.ftvm(["protect", domain, "--address", "\(guestAddress)/24"])
        let trigger = "\(work)/upgraded"
        let script = """
            import http.client, os, time
            c = http.client.HTTPConnection("\(guestAddress)", 80, timeout=300)
            def get(path):
                c.request("GET", path)
                return c.getresponse().read().decode().strip()
            print("before", get("/version.txt"), c.sock.getsockname()[1], flush=True)
            while not os.path.exists("\(trigger)"):
                time.sleep(0.1)
            print("after", get("/version.txt"), c.sock.getsockname()[1], flush=True)
            """
        let session = Process()
        let sessionOutput = Pipe()
        session.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        session.arguments = ["ip", "netns", "exec", client, "python3", "-c", script]
        session.standardOutput = sessionOutput
        try session.run()
        defer { if session.isRunning { session.terminate() } }
        let file = "\(work)/download.bin"
        // Paced to outlast the new guest's boot under TCG and the drain.
        let download = try startDownload(to: file, rate: "1M", maxTime: 300)
        defer { if download.isRunning { download.terminate() } }
        sleep(3)

        let upgrade = try Harness.ftvm([
            "upgrade", "--name", domain, "--disk", newDisk, "--drain-timeout", "5", "--ready-timeout", "300",
        ])
        print("protect-upgrade: \(upgrade.stdout)")
        XCTAssertTrue(upgrade.stdout.contains(": done in"), upgrade.combined)
        try Data().write(to: URL(fileURLWithPath: trigger))
        session.waitUntilExit()
        let lines = String(decoding: sessionOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(lines.count, 2, "\(lines)")
        XCTAssertEqual(lines.first?[1], "disk-1.0.0", "\(lines)")
        XCTAssertEqual(lines.last?[1], "disk-2.0.0", "the same connection reaches version 2: \(lines)")
        XCTAssertEqual(lines.first?[2], lines.last?[2], "one TCP connection: \(lines)")
        download.waitUntilExit()
        XCTAssertEqual(download.terminationStatus, 0, "curl across the upgrade")
        XCTAssertEqual(
            try Harness.sha256(file: file), try Harness.referenceStreamSHA256(count: 64 << 20, seed: 1),
            "the download is byte-exact across the upgrade")

        try Harness.waitUntilProtected(domain)
        let status = try Harness.status(domain)
        let record = try XCTUnwrap(status["upgrade"] as? [String: Any])
        XCTAssertEqual(record["step"] as? String, "done", "\(record)")
        XCTAssertEqual(record["errors"] as? [String], [], "\(record)")
        XCTAssertTrue((record["toVersion"] as? String ?? "").contains(newDisk), "\(record)")
        let guests = try XCTUnwrap(status["guests"] as? [[String: Any]])
        XCTAssertEqual(Set(guests.compactMap { $0["imageVersion"] as? String }), ["disk-2.0.0"], "\(guests)")
        XCTAssertEqual(try Harness.virshDomains()[domain], "shut off", "the operator's own domain does not run")
    }

    /// The whole path: protect → a download across a kernel panic, byte-exact on the same
    /// connection → the backup destroyed by hand, replaced → unprotect gives the domain back.
    func testProtectPanicReprotectUnprotect() throws {
        let before = try virsh("dumpxml", "--inactive", domain).stdout
        let started = Date()
        // Served over HTTPS too, terminated on the host (docs/https.md), from an address of the
        // operator's subnet that the client does not have.
        let certificate = Harness.TestCertificate(address: guestAddress, directory: "\(work)/tls")
        try Harness.ftvm(
            ["protect", domain, "--address", "\(guestAddress)/24", "--tls-source", "10.78.0.253"]
                + certificate.options(ports: ["443:80"]))
        let protectSeconds = Date().timeIntervalSince(started)
        let domains = try Harness.virshDomains()
        XCTAssertEqual(domains["ftvm-\(domain)-1"], "running")
        XCTAssertEqual(domains["ftvm-\(domain)-2"], "paused")
        XCTAssertEqual(domains[domain], "shut off", "the operator's own domain does not run meanwhile")
        let status = try Harness.status(domain)
        XCTAssertEqual(status["clients"] as? String, "bridge \(bridge)")

        // 64 MiB at the client's MTU 1500, rate-limited so the fault lands mid-download: a
        // kernel panic, then `virsh shutdown` of the primary (systemd stops the agent first, so
        // its heartbeat stops: a failover, docs/failover.md). Byte-exact on the same connection.
        for (round, fault) in ["kernel panic", "virsh shutdown"].enumerated() {
            let before = try Harness.status(domain)["lastRecovery"] as? [String: Any]
            let primary = try XCTUnwrap(
                (try Harness.status(domain)["guests"] as? [[String: Any]])?.first {
                    $0["role"] as? String == "primary"
                }?[
                    "domain"] as? String)
            let file = "\(work)/download-\(round).bin"
            let download = try startDownload(to: file, rate: "6M", maxTime: 180)
            defer { if download.isRunning { download.terminate() } }
            // With the kernel panic, the same file over HTTPS beside it.
            let secure =
                round == 0 ? try startDownload(to: file + ".https", rate: "6M", maxTime: 180, https: certificate) : nil
            defer { if secure?.isRunning == true { secure?.terminate() } }
            sleep(3)
            if round == 0 {
                try Harness.ftvm(["inject", "kernel-panic", "--name", domain])
            } else {
                XCTAssertEqual(try virsh("shutdown", primary).status, 0)
            }
            download.waitUntilExit()
            XCTAssertEqual(download.terminationStatus, 0, "curl across \(fault)")
            XCTAssertEqual(
                try Harness.sha256(file: file), try Harness.referenceStreamSHA256(count: 64 << 20, seed: 1),
                "the download is byte-exact across \(fault)")
            if let secure {
                secure.waitUntilExit()
                XCTAssertEqual(secure.terminationStatus, 0, "curl over HTTPS across \(fault)")
                XCTAssertEqual(
                    try Harness.sha256(file: file + ".https"),
                    try Harness.referenceStreamSHA256(count: 64 << 20, seed: 1),
                    "the HTTPS download is byte-exact across \(fault)")
            }
            let recovery = try Harness.recovery(domain, after: before)
            XCTAssertEqual(recovery["failedDomain"] as? String, primary, "\(recovery)")
            if round == 0 {
                XCTAssertTrue((recovery["cause"] as? String ?? "").contains("kernel panic"), "\(recovery)")
            }
            XCTAssertEqual(
                (recovery["replay"] as? [String: Any])?["spliced"] as? Int, round == 0 ? 2 : 1, "\(fault): \(recovery)")
            try Harness.waitUntilProtected(domain)
        }

        // The backup destroyed by hand: unprotected at once, then protected again.
        let backup = try XCTUnwrap(
            (try Harness.status(domain)["guests"] as? [[String: Any]])?.first { $0["role"] as? String == "backup" }?[
                "domain"] as? String)
        _ = try virsh("destroy", backup)
        var sawUnprotected = false
        for _ in 0..<80 where !sawUnprotected {
            sawUnprotected = try Harness.status(domain)["protected"] as? Bool == false
            usleep(50_000)
        }
        XCTAssertTrue(sawUnprotected, "status says unprotected")
        let reprotectStart = Date()
        while try Harness.status(domain)["protected"] as? Bool != true, Date().timeIntervalSince(reprotectStart) < 120 {
            usleep(200_000)
        }
        XCTAssertEqual(try Harness.status(domain)["protected"] as? Bool, true, "protected again")
        print(
            String(
                format: "protect-figures: protect %.1f s, re-protect after a destroyed backup %.1f s",
                protectSeconds, Date().timeIntervalSince(reprotectStart)))

        // Unprotect: the definition as it was, the domain running and serving.
        let unprotect = try Harness.ftvm(["unprotect", domain])
        XCTAssertTrue(unprotect.stdout.contains("exactly as it was"), unprotect.combined)
        XCTAssertEqual(try virsh("dumpxml", "--inactive", domain).stdout, before, "the operator's XML is back")
        XCTAssertEqual(try Harness.virshDomains()[domain], "running")
        var served = false
        for _ in 0..<60 where !served {
            served = try curl(["-m", "2", "-o", "/dev/null", "http://\(guestAddress)/"]).status == 0
            if !served { sleep(1) }
        }
        XCTAssertTrue(served, "the domain serves again on its own")
        XCTAssertEqual(try Harness.leftovers(of: domain), [])
    }
}
