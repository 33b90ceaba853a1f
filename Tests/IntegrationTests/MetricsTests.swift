import Foundation
import PrometheusText
import XCTest

/// One real pair with its metrics endpoint: scraped before and after an injected kernel panic
/// while a download is open, read with the tests' own Prometheus parser and checked by
/// `promtool check metrics`. The recovery must be counted once, each phase observed once with
/// the duration `ftvm status` reports, and the open download replayed and spliced.
final class MetricsTests: PairTestCase {
    override var pair: String { "hmet" }
    /// A second name, for an `up` that must fail before making anything.
    private let other = "hmet2"

    override func tearDownWithError() throws {
        try super.tearDownWithError()
        _ = try? Harness.run([Harness.ftvm, "down", "--name", other])
    }

    func testScrapeCountsARecoveryAndItsPhases() throws {
        try Harness.ftvm(["up", "--name", pair])
        let status = try Harness.status(pair)
        let address = try XCTUnwrap(status["metricsAddress"] as? String, "status has no metrics address")
        let port = try XCTUnwrap(address.split(separator: ":").last.flatMap { Int($0) })
        XCTAssertTrue(address.hasPrefix("127.0.0.1:"), address)
        XCTAssertTrue((9477...9486).contains(port), "the default takes a port of 9477-9486: \(address)")
        let text = try Harness.ftvm(["status", "--name", pair]).stdout
        XCTAssertTrue(text.contains("metrics: http://\(address)/metrics"), text)

        // An explicit address that cannot be bound fails `up` at once, and nothing is made.
        let refused = try Harness.run([Harness.ftvm, "up", "--name", other, "--metrics", address])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.combined.contains("cannot serve metrics on \(address)"), refused.combined)
        XCTAssertEqual(try Harness.leftovers(of: other), [], "a refused up left things behind")

        let tapBefore = try tapBytes()
        let before = try scrape(address)
        XCTAssertEqual(before.value("ftvm_protected", ["pair": pair]), 1)
        XCTAssertEqual(before.value("ftvm_recoveries_total", ["pair": pair, "cause": "kernel_panic"]), 0)
        let guests = try XCTUnwrap(status["guests"] as? [[String: Any]])
        for guest in guests {
            let domain = try XCTUnwrap(guest["domain"] as? String)
            let role = try XCTUnwrap(guest["role"] as? String)
            let age = try XCTUnwrap(
                before.value("ftvm_heartbeat_age_seconds", ["pair": pair, "domain": domain, "role": role]),
                "no heartbeat age for \(domain)")
            // The primary's agent beats every 20 ms; the paused backup's heartbeat stands still.
            if role == "primary" { XCTAssertLessThan(age, 1, domain) } else { XCTAssertGreaterThan(age, 0, domain) }
        }

        // A slow download is open across the fault: the replay carries it on. (Larger than the
        // client's receive buffer can take early: the links deliver at tens of MB/s whatever
        // curl's rate.)
        let seed = UInt64.random(in: 1...1_000_000)
        let count = 24_000_000
        let download = BackgroundReport { [pair] in
            let got = try Harness.run([
                "bash", "-c",
                "ip netns exec ftvm-\(pair) curl -sS --fail --max-time 120 --limit-rate 2m 'http://\(Harness.serviceAddress)/bytes/\(count)?seed=\(seed)' | sha256sum",
            ])
            return ["sha": String(got.stdout.prefix(64)), "stderr": got.stderr]
        }
        sleep(3)
        let injected = try Harness.ftvm(["inject", "kernel-panic", "--name", pair])
        XCTAssertTrue(injected.stdout.contains("injected kernel-panic"), injected.stdout)
        let downloaded = try download.wait(seconds: 150)
        XCTAssertEqual(
            downloaded["sha"] as? String, try Harness.referenceStreamSHA256(count: count, seed: seed),
            "download across the takeover: \(downloaded["stderr"] ?? "")")
        try Harness.waitUntilProtected(pair)
        let recovery = try XCTUnwrap(try Harness.status(pair)["lastRecovery"] as? [String: Any])
        XCTAssertEqual(recovery["reprotected"] as? Bool, true)
        let after = try scrape(address)
        let tapAfter = try tapBytes()

        func delta(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            let labels = labels.merging(["pair": pair]) { $1 }
            guard let now = after.value(name, labels), let then = before.value(name, labels) else { return nil }
            return now - then
        }
        XCTAssertEqual(after.value("ftvm_protected", ["pair": pair]), 1)
        XCTAssertEqual(delta("ftvm_recoveries_total", ["cause": "kernel_panic"]), 1)
        XCTAssertEqual(delta("ftvm_detection_seconds_count", ["fault": "kernel-panic"]), 1)
        let detect = try XCTUnwrap(recovery["detectMillis"] as? Double)
        XCTAssertEqual(
            try XCTUnwrap(delta("ftvm_detection_seconds_sum", ["fault": "kernel-panic"])), detect / 1000, accuracy: 1e-5
        )
        // Each phase status reports is observed once, with the duration status gives it.
        let phases = try XCTUnwrap(recovery["phases"] as? [[String: Any]])
        let names = phases.compactMap { $0["name"] as? String }
        XCTAssertEqual(
            Set(names), ["fence", "switch", "resume", "first-packet", "replay", "first-byte", "re-protected"],
            "\(names)")
        var report: [String] = []
        for phase in phases {
            let name = try XCTUnwrap(phase["name"] as? String)
            let millis = try XCTUnwrap(phase["millis"] as? Double)
            XCTAssertEqual(delta("ftvm_recovery_phase_seconds_count", ["phase": name]), 1, name)
            let sum = try XCTUnwrap(delta("ftvm_recovery_phase_seconds_sum", ["phase": name]), name)
            XCTAssertEqual(sum, millis / 1000, accuracy: 1e-5, name)
            report.append("\(name)=\(millis)ms")
        }
        XCTAssertEqual(delta("ftvm_replay_connections_total"), 1)
        XCTAssertEqual(delta("ftvm_replay_spliced_total"), 1)
        let resets = after.families["ftvm_replay_resets_total"]?.samples.map(\.value).reduce(0, +)
        XCTAssertEqual(resets, 0)
        // The relay's byte counters against the kernel's own count on the tap: what the relay
        // writes to the tap the tap receives; what it sends to a guest is what it read from the
        // tap (less frames dropped) plus the frames the replay builds (a fake SYN, the logged
        // request, and an ACK of at most 66 bytes per regenerated segment of at least 1448 bytes).
        // The pair is idle around the scrapes.
        let toClients = try XCTUnwrap(delta("ftvm_relay_bytes_total", ["direction": "to_clients"]))
        let toGuest = try XCTUnwrap(delta("ftvm_relay_bytes_total", ["direction": "to_guest"]))
        let tapReceived = Double(tapAfter.received - tapBefore.received)
        let tapSent = Double(tapAfter.sent - tapBefore.sent)
        XCTAssertGreaterThan(toClients, Double(count), "the download's bytes went through the relay")
        XCTAssertEqual(toClients, tapReceived, accuracy: tapReceived * 0.01 + 2000, "relay vs tap rx_bytes")
        let timings = (recovery["replay"] as? [String: Any])?["connectionTimings"] as? [[String: Any]] ?? []
        let regenerated = Double(timings.compactMap { $0["regeneratedBytes"] as? Int }.reduce(0, +))
        XCTAssertLessThanOrEqual(toGuest, tapSent + 4096 + regenerated / 1448 * 66, "relay vs tap tx_bytes")
        // The lower bound: every frame the tap sent reached a guest unless the relay dropped it, or
        // held it during the takeover and dropped it then (which the held count includes). The
        // client sends no super-frame here, only its request and ACKs: no such frame exceeds
        // 1514 bytes (MTU 1500 and the Ethernet header).
        let dropped = try XCTUnwrap(delta("ftvm_relay_frames_dropped_total"))
        let held = try XCTUnwrap(delta("ftvm_relay_frames_held_total"))
        XCTAssertGreaterThanOrEqual(
            toGuest, tapSent - (dropped + held) * 1514,
            "relay vs tap tx_bytes (\(Int(dropped)) frames dropped, \(Int(held)) held)")
        XCTAssertGreaterThan(try XCTUnwrap(delta("ftvm_relay_frames_total", ["direction": "to_guest"])), 0)
        XCTAssertGreaterThan(try XCTUnwrap(after.value("ftvm_log_capacity_bytes", ["pair": pair])), 0)
        print(
            "metrics: recovery counted \(delta("ftvm_recoveries_total", ["cause": "kernel_panic"]) ?? -1), detection \(detect) ms, phases \(report.joined(separator: " ")), replayed \(delta("ftvm_replay_connections_total") ?? -1), spliced \(delta("ftvm_replay_spliced_total") ?? -1), bytes to clients +\(Int(toClients)) (tap rx +\(Int(tapReceived))), to guest +\(Int(toGuest)) (tap tx +\(Int(tapSent)))"
        )
    }

    /// The kernel's byte counters of the pair's tap, in the client namespace: received (what the
    /// relay wrote to it) and sent (what the clients sent, for the relay to read).
    private func tapBytes() throws -> (received: Int, sent: Int) {
        func read(_ counter: String) throws -> Int {
            let output = try Harness.run([
                "ip", "netns", "exec", "ftvm-\(pair)", "cat", "/sys/class/net/ftvm-\(pair)/statistics/\(counter)",
            ])
            return try XCTUnwrap(Int(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), output.combined)
        }
        return (try read("rx_bytes"), try read("tx_bytes"))
    }

    /// Scrapes `/metrics` over loopback, checks it with promtool, and parses it.
    private func scrape(_ address: String, file: StaticString = #filePath, line: UInt = #line) throws -> Exposition {
        let body = try Harness.run(["curl", "-sS", "--fail", "--max-time", "10", "http://\(address)/metrics"])
        XCTAssertEqual(body.status, 0, body.stderr, file: file, line: line)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ftvm-\(pair)-scrape.txt")
        try Data(body.stdout.utf8).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let checked = try Harness.run(["promtool", "check", "metrics"], input: path)
        XCTAssertEqual(checked.status, 0, "promtool check metrics: \(checked.combined)", file: file, line: line)
        return try Exposition(body.stdout)
    }
}
