import Foundation
import XCTest

/// HTTPS terminated on the host (docs/https.md), with real clients and a CA made here with
/// openssl: the TLS session lives in HAProxy, the guest serves plain HTTP, and a fault, an
/// upgrade or a killed daemon is a pause for the client on one TCP connection and one TLS
/// session, every byte checked against the independent reference.
final class HTTPSTests: SharedPairTestCase {
    override class var pair: String { "ithttps" }

    /// The test CA and the service's certificate, made once per test process.
    static let credentials = Harness.TestCertificate(
        address: Harness.serviceAddress, directory: NSTemporaryDirectory() + "ftvm-https-\(getpid())")

    /// The demo service on 443, the image's nginx on 8443.
    override class var upOptions: [String] {
        credentials.options(ports: ["443:80", "8443:8081"])
    }

    private var pair: String { Self.pair }
    private let https = "https://\(Harness.serviceAddress)"

    /// curl in the clients' namespace with the test CA; its output and exit status.
    private func curl(_ arguments: [String]) throws -> Harness.Output {
        try Harness.run(
            ["ip", "netns", "exec", "ftvm-\(pair)", "curl", "-sS", "--max-time", "30", "--cacert", Self.credentials.ca]
                + arguments)
    }

    private func curlInBackground(_ url: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "ip", "netns", "exec", "ftvm-\(pair)", "curl", "-sS", "--fail", "--max-time", "60", "-o", "/dev/null",
            "--cacert", Self.credentials.ca, url,
        ]
        try process.run()
        return process
    }

    func testADownloadFromNginxKeepsItsTLSSessionAcrossEveryFault() throws {
        let faults = [
            ["kernel-panic"], ["kernel-hang"], ["service-crash", "--service", "nginx"],
            ["service-hang", "--service", "nginx"], ["qemu-kill"], ["agent-kill"], ["network-stall"],
        ]
        for fault in faults {
            // nginx's splitmix-32M.bin through 8443: the splitmix64 stream of seed 1.
            let download = try Harness.Download(
                pair: pair, size: 32 << 20, seed: 1, curlOptions: "--cacert \(Self.credentials.ca)",
                url: "\(https):8443/splitmix-32M.bin")
            sleep(2)
            XCTAssertGreaterThan(download.bytesWritten, 0, "\(fault[0]): the download is under way before the fault")
            let before = try Harness.status(pair)["lastRecovery"] as? [String: Any]
            try Harness.ftvm(["inject"] + fault + ["--name", pair])
            // A stuck NIC shows once a client asks for something (the download only acknowledges):
            // a new HTTPS request, whose back connection's SYN goes unanswered.
            let asking = fault[0] == "network-stall" ? try curlInBackground("\(https)/health") : nil
            let recovery = try Harness.recovery(pair, after: before)
            asking?.waitUntilExit()
            XCTAssertEqual(asking?.terminationStatus ?? 0, 0, "the request made during the stall is answered")
            XCTAssertEqual((recovery["replay"] as? [String: Any])?["reset"] as? Int, 0, "\(fault[0]): \(recovery)")
            try download.check()
            XCTAssertEqual(download.connects, 1, "\(fault[0]): one TCP connection, so one TLS session")
            try Harness.waitUntilProtected(pair)
        }
    }

    func testBKeepAliveSessionsSurviveAServiceCrashAndAnUpgrade() throws {
        let stopFile = NSTemporaryDirectory() + "ftvm-https-stop-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: stopFile) }
        let script = Harness.repository.appendingPathComponent("Tests/tools/https_session.py").path
        let sessions = BackgroundReport { [pair] in
            let output = try Harness.run([
                "ip", "netns", "exec", "ftvm-\(pair)", "python3", script, "--host", Harness.serviceAddress,
                "--demo-port", "443", "--nginx-port", "8443", "--cafile", Self.credentials.ca, "--stop-file", stopFile,
            ])
            let last = output.stdout.split(separator: "\n").last.map(String.init) ?? ""
            return (try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
                ?? ["ok": false, "failures": ["no report: \(output.combined.suffix(2000))"]]
        }
        sleep(3)
        let before = try Harness.status(pair)["lastRecovery"] as? [String: Any]
        try Harness.ftvm(["inject", "service-crash", "--name", pair])
        _ = try Harness.recovery(pair, after: before)
        try Harness.waitUntilProtected(pair)
        sleep(2)
        let upgrade = try Harness.run([
            Harness.ftvm, "upgrade", "--name", pair, "--image", "/var/lib/ftvm/images/v2", "--drain-timeout", "10",
        ])
        XCTAssertEqual(upgrade.status, 0, "upgrade:\n\(upgrade.combined)")
        sleep(3)
        FileManager.default.createFile(atPath: stopFile, contents: nil)
        let report = try sessions.wait(seconds: 120)
        XCTAssertEqual(report["ok"] as? Bool, true, "sessions: \(report)")
        XCTAssertEqual(report["failures"] as? [String], [], "no request failed, no session reconnected")
        XCTAssertEqual(report["client"] as? String, "10.77.0.1")
        XCTAssertEqual(
            report["versions"] as? [String], ["1.0.0", "2.0.0"], "the same sessions, before and after the upgrade")
        XCTAssertEqual(report["alpn"] as? String, "http/1.1")
        XCTAssertGreaterThan(report["requests"] as? Int ?? 0, 50)
    }

    func testCTLSVersionsALPNAndBadClients() throws {
        for versions in [["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]] {
            let answer = try curl(versions + ["-w", " %{http_code} %{ssl_verify_result}", "\(https)/health"])
            XCTAssertEqual(answer.stdout, "ok\n 200 0", "\(versions): \(answer.combined)")
        }
        let tls11 = try curl(["--tlsv1.1", "--tls-max", "1.1", "\(https)/health"])
        XCTAssertNotEqual(tls11.status, 0, "TLS 1.1 is refused: \(tls11.combined)")
        let handshake = try Harness.run([
            "ip", "netns", "exec", "ftvm-\(pair)", "sh", "-c",
            "echo | openssl s_client -connect \(Harness.serviceAddress):443 -alpn h2,http/1.1 -CAfile \(Self.credentials.ca) 2>&1",
        ])
        XCTAssertTrue(handshake.stdout.contains("ALPN protocol: http/1.1"), handshake.stdout)
        XCTAssertTrue(handshake.stdout.contains("Verify return code: 0 (ok)"), handshake.stdout)
        // A client speaking plain HTTP to the TLS port gets nothing, cleanly; the pair serves on.
        let plain = try Harness.run([
            "ip", "netns", "exec", "ftvm-\(pair)", "curl", "-sS", "--max-time", "10",
            "http://\(Harness.serviceAddress):443/health",
        ])
        XCTAssertEqual(plain.status, 52, "curl's 'empty reply': \(plain.combined)")
        // 50 clients that vanish mid-handshake (half a ClientHello, then gone), then a flood of
        // handshakes (64 connections, each request a new TLS session): the terminator absorbs
        // them, and the pair is neither failed over nor slowed into a false failover.
        let recoveries = try XCTUnwrap(try Harness.status(pair)["recoveries"] as? Int)
        let vanish = try Harness.run([
            "ip", "netns", "exec", "ftvm-\(pair)", "python3", "-c",
            "import socket\nfor _ in range(50):\n    s = socket.create_connection(('\(Harness.serviceAddress)', 443))\n"
                + "    s.sendall(bytes([22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3]))\n    s.close()\n",
        ])
        XCTAssertEqual(vanish.status, 0, vanish.combined)
        let flood = try Harness.run([
            "ip", "netns", "exec", "ftvm-\(pair)", "wrk", "-t1", "-c64", "-d5s", "-H", "Connection: close",
            "\(https)/health",
        ])
        XCTAssertTrue(flood.stdout.contains("requests in"), flood.combined)
        XCTAssertEqual(try curl(["\(https)/health"]).stdout, "ok\n")
        XCTAssertEqual(try Harness.status(pair)["phase"] as? String, "protected")
        XCTAssertEqual(try Harness.status(pair)["recoveries"] as? Int, recoveries, "no failover")
    }

    func testDWrkOverHTTPSAcrossAKernelPanicHasNoErrors() throws {
        let run = BackgroundReport { [pair] in
            let output = try Harness.run([
                "ip", "netns", "exec", "ftvm-\(pair)", "wrk", "-t1", "-c8", "-d12s", "--timeout", "30s",
                "https://\(Harness.serviceAddress)/bytes/4000?seed=5",
            ])
            return ["output": output.combined]
        }
        sleep(3)
        let before = try Harness.status(pair)["lastRecovery"] as? [String: Any]
        try Harness.ftvm(["inject", "kernel-panic", "--name", pair])
        _ = try Harness.recovery(pair, after: before)
        let output = try run.wait(seconds: 60)["output"] as? String ?? ""
        let requests = output.split(separator: "\n").first { $0.contains("requests in") }
            .flatMap { Int($0.split(separator: " ").first ?? "") }
        XCTAssertGreaterThan(requests ?? 0, 100, output)
        XCTAssertFalse(output.contains("Socket errors"), output)
        XCTAssertFalse(output.contains("Non-2xx"), output)
        try Harness.waitUntilProtected(pair)
    }

    func testEADaemonKilledMidDownloadIsAdoptedWithItsTerminator() throws {
        let status = try Harness.status(pair)
        let daemon = try XCTUnwrap(status["daemonPID"] as? Int)
        let haproxy = try XCTUnwrap(status["tlsPID"] as? Int)
        XCTAssertGreaterThan(haproxy, 0)
        let download = try Harness.Download(
            pair: pair, size: 20_000_000, seed: 77, base: https, curlOptions: "--cacert \(Self.credentials.ca)")
        sleep(2)
        XCTAssertEqual(kill(Int32(daemon), SIGKILL), 0)
        usleep(500_000)
        XCTAssertTrue(download.process.isRunning, "the download is in flight while the daemon is dead")
        try Harness.ftvm(["up", "--name", pair] + Self.upOptions)
        let after = try Harness.status(pair)
        XCTAssertNotEqual(after["daemonPID"] as? Int, daemon)
        XCTAssertEqual(after["tlsPID"] as? Int, haproxy, "the new daemon adopted the running terminator")
        try download.check()
        XCTAssertEqual(download.connects, 1)
    }

    func testFChaosOverHTTPSLosesNothing() throws {
        let output = try Harness.run([
            Harness.ftvm, "chaos", "--name", pair, "--count", "2", "--seed", "11", "--faults",
            "kernel-panic,service-crash",
            "--url", "\(https)/bytes/16000000?seed=1", "--cacert", Self.credentials.ca, "--pipelined", "0",
        ])
        XCTAssertEqual(output.status, 0, output.combined)
        XCTAssertTrue(output.stdout.contains("PASS"), output.combined)
    }

    /// Without --url, a campaign adds HTTPS by itself when the pair terminates it for the demo
    /// service: downloads and a keep-alive session through the terminator, the server known by
    /// its key pinned from the pair's certificate (no --cacert).
    func testFChaosAddsHTTPSByItself() throws {
        let output = try Harness.run([
            Harness.ftvm, "chaos", "--name", pair, "--count", "1", "--seed", "12", "--faults", "kernel-panic",
            "--pipelined", "0", "--json",
        ])
        XCTAssertEqual(output.status, 0, output.combined)
        let round = try XCTUnwrap(
            try Harness.jsonLines(output.stdout).first { $0["round"] as? Int == 1 }, output.combined)
        // 4 downloads (2 of them HTTPS), 1 upload, a keep-alive session over HTTP and one over HTTPS.
        XCTAssertEqual(round["ok"] as? Int, 7, output.combined)
        XCTAssertEqual(round["wrong"] as? Int, 0)
        let left = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter {
            $0.hasPrefix("ftvm-chaos-\(pair)-") && $0.hasSuffix("-pubkey.pem")
        }
        XCTAssertEqual(left, [], "the pinned key is removed")
    }

    func testGAKilledTerminatorIsStartedAgain() throws {
        let before = try XCTUnwrap(try Harness.status(pair)["tlsPID"] as? Int)
        XCTAssertEqual(kill(Int32(before), SIGKILL), 0)
        var after = 0
        for _ in 0..<100 where after == 0 || after == before {
            usleep(100_000)
            after = try Harness.status(pair)["tlsPID"] as? Int ?? 0
        }
        XCTAssertNotEqual(after, before, "a new terminator")
        XCTAssertGreaterThan(after, 0)
        XCTAssertEqual(try Harness.status(pair)["tlsRestarts"] as? Int, 1)
        XCTAssertEqual(try curl(["\(https)/health"]).stdout, "ok\n", "HTTPS is served again")
    }

    func testZZZDownLeavesNothingBehind() throws {
        try downLeavesNothingBehind()
        try? FileManager.default.removeItem(atPath: Self.credentials.directory)
    }
}
