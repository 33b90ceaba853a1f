import FTVMSystem
import Foundation
import XCTest

/// `ftvm daemon --config FILE` run as systemd runs it (ftvm@.service): in the foreground, with
/// only the unit's capabilities (setpriv) and `$NOTIFY_SOCKET` naming a socket this test binds
/// in systemd's place. READY=1 must come only once `ftvm status` says protected; a daemon
/// killed with SIGKILL and started again adopts the pair; SIGTERM takes the pair down; a
/// second daemon for a served pair refuses to start.
final class SystemdDaemonTests: PairTestCase {
    override var pair: String { "hcfg" }

    static let unit = Harness.repository.appendingPathComponent("contrib/systemd/ftvm@.service")

    /// The unit's CapabilityBoundingSet as setpriv's `--bounding-set` list.
    static func boundingSet() throws -> String {
        let text = try String(contentsOf: unit, encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("CapabilityBoundingSet=") })
        let capabilities = line.dropFirst("CapabilityBoundingSet=".count).split(separator: " ")
        return (["-all"] + capabilities.map { "+" + $0.dropFirst("CAP_".count).lowercased() }).joined(separator: ",")
    }

    /// Starts the daemon in the foreground (not detached: this test is its systemd).
    private func startDaemon(config: String, notifySocket: String, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = [
            "--no-new-privs", "--bounding-set", try Self.boundingSet(), Harness.ftvm, "daemon", "--config", config,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notifySocket
        process.environment = environment
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        output.seekToEndOfFile()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    private func phase() -> String? {
        let output = try? Harness.run([Harness.ftvm, "status", "--name", pair, "--json"])
        guard output?.status == 0, let data = output?.stdout.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["phase"] as? String
    }

    /// Waits for READY=1, checking at each step that no READY came before `ftvm status` said
    /// protected: every poll that finds the pair not protected must have started with no READY
    /// received yet, and right after READY, status says protected.
    private func waitForReady(
        _ socket: UnixDatagram, daemon: Process, log: String, seconds: Double = 300
    ) throws -> [String] {
        var datagrams: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        var ready: Bool { datagrams.contains { $0.split(separator: "\n").contains("READY=1") } }
        while Date() < deadline {
            XCTAssertTrue(daemon.isRunning, "the daemon exited:\n\(Self.tail(log))")
            guard daemon.isRunning else { return datagrams }
            let readyBefore = ready
            let phase = phase()
            if phase != "protected" {
                XCTAssertFalse(readyBefore, "READY=1 came while status says \(phase ?? "nothing")")
            }
            while let datagram = try socket.receive(timeoutSeconds: 0.25) {
                datagrams.append(String(decoding: datagram, as: UTF8.self))
            }
            if ready {
                XCTAssertEqual(self.phase(), "protected", "READY=1 but status does not say protected")
                return datagrams
            }
        }
        XCTFail("no READY=1 within \(Int(seconds)) s; datagrams \(datagrams)\n\(Self.tail(log))")
        return datagrams
    }

    static func tail(_ path: String) -> String {
        String(((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").suffix(3000))
    }

    func testNotifyReadinessAdoptionAfterSIGKILLAndSIGTERMTakesThePairDown() throws {
        let directory = NSTemporaryDirectory() + "ftvm-systemd-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/hcfg.yaml"
        try "name: hcfg\nhealth:\n  missed-ticks: 6\nlog:\n  size-mib: 64\nmetrics: none\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        let log = directory + "/daemon.log"
        // An abstract address, as systemd itself uses for $NOTIFY_SOCKET.
        let address = "@ftvm-test-notify-\(getpid())"
        let socket = try UnixDatagram(bindingTo: address)

        let first = try startDaemon(config: config, notifySocket: address, log: log)
        let datagrams = try waitForReady(socket, daemon: first, log: log)
        XCTAssertEqual(datagrams.first, "STATUS=pair hcfg: starting\n")
        XCTAssertEqual(datagrams.last, "READY=1\nSTATUS=pair hcfg: protected\n")
        let status = try Harness.status(pair)
        XCTAssertEqual(status["protected"] as? Bool, true)
        let logStatus = try XCTUnwrap(status["log"] as? [String: Any])
        XCTAssertEqual(logStatus["capacityBytes"] as? Int, 64 << 20, "the file's log.size-mib: \(logStatus)")
        let domains = try Harness.pairDomains(pair)
        XCTAssertEqual(domains["ftvm-hcfg-1"], "running")
        XCTAssertEqual(domains["ftvm-hcfg-2"], "paused")

        // A second daemon for the pair (`ftvm up` beside the unit, say) refuses to start and
        // leaves the first one's control socket alone.
        let intruder = try Harness.run([Harness.ftvm, "daemon", "--config", config])
        XCTAssertEqual(intruder.status, 1)
        XCTAssertTrue(
            intruder.stderr.contains("pair 'hcfg' already has a daemon (pid \(first.processIdentifier))"),
            intruder.stderr)
        XCTAssertEqual(phase(), "protected")

        // What systemd's Restart=on-failure does after a crash: the same command again.
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let second = try startDaemon(config: config, notifySocket: address, log: log)
        _ = try waitForReady(socket, daemon: second, log: log, seconds: 60)
        XCTAssertEqual(try Harness.pairDomains(pair), domains, "the restarted daemon adopts the guests, boots none")
        XCTAssertTrue(Self.tail(log).contains("adopted the running pair"), Self.tail(log))
        let pid = try XCTUnwrap(try Harness.status(pair)["daemonPID"] as? Int)
        XCTAssertEqual(pid, Int(second.processIdentifier))

        // systemctl stop: SIGTERM takes the pair down, as `ftvm down` does, and exits 0.
        kill(second.processIdentifier, SIGTERM)
        let stopping = try XCTUnwrap(try socket.receive(timeoutSeconds: 10))
        XCTAssertEqual(
            String(decoding: stopping, as: UTF8.self), "STOPPING=1\nSTATUS=pair hcfg: taking the pair down\n")
        let stopDeadline = Date().addingTimeInterval(120)
        while second.isRunning, Date() < stopDeadline { usleep(100_000) }
        XCTAssertFalse(second.isRunning, "the daemon did not exit within 120 s of SIGTERM")
        XCTAssertEqual(second.terminationStatus, 0, Self.tail(log))
        XCTAssertEqual(try Harness.leftovers(of: pair), [])
    }
}
