import Foundation
import XCTest

/// The Pacemaker resource agent, contrib/ocf/ftvm, run the way Pacemaker runs it (an action as
/// its argument, parameters as OCF_RESKEY_* variables) against a real pair, and checked by
/// Debian's `ocf-tester` (resource-agents), which drives start, stop, monitor and the probes and
/// checks each exit code against the OCF spec.
final class ResourceAgentTests: PairTestCase {
    override var pair: String { "hocf" }

    func testOcfTesterPassesAgainstARealPair() throws {
        let started = Date()
        let output = try Harness.run(
            ["ocf-tester", "-v", "-n", pair, "-o", "name=\(pair)", "-o", "binary=\(Harness.ftvm)", Agent.path])
        let seconds = Date().timeIntervalSince(started)
        print(String(format: "ocf-tester took %.1f s", seconds))
        XCTAssertEqual(output.status, 0, "ocf-tester failed:\n\(output.combined)")
        XCTAssertTrue(output.stdout.contains("\(Agent.path) passed all tests"), output.combined)
        // It ends with "stop" then "stop on a stopped pair": the host must show nothing of it.
        XCTAssertEqual(try Harness.leftovers(of: pair), [], "the pair after ocf-tester's last stop")
    }

    /// Every answer monitor gives, each caused for real and checked against what ftvm and
    /// libvirt show: running and protected, failed (daemon killed, guests left), running but
    /// degraded (re-protecting after a takeover), not running.
    func testMonitorTellsProtectedDegradedFailedAndStopped() throws {
        let agent = Agent(pair: pair)
        XCTAssertEqual(try agent.run("monitor").status, Agent.notRunning, "before start")
        XCTAssertEqual(try agent.run("start").status, Agent.success)
        let first = try Harness.status(pair)
        XCTAssertEqual(first["phase"] as? String, "protected")
        let domains = try Harness.virshDomains()
        XCTAssertEqual(domains["ftvm-\(pair)-1"], "running", "\(domains)")
        XCTAssertEqual(domains["ftvm-\(pair)-2"], "paused", "\(domains)")
        XCTAssertEqual(try agent.run("monitor").status, Agent.success)

        // The daemon dies; its guests and log stay: failed, and start adopts them.
        let pid = try XCTUnwrap(first["daemonPID"] as? Int)
        XCTAssertEqual(kill(Int32(pid), SIGKILL), 0)
        try waitUntil("daemon \(pid) gone") { kill(Int32(pid), 0) != 0 }
        let failed = try agent.run("monitor")
        XCTAssertEqual(failed.status, Agent.genericError, failed.combined)
        XCTAssertTrue(failed.combined.contains("/dev/shm/ftvm-\(pair)-log"), "names what was left: \(failed.combined)")
        XCTAssertEqual(try agent.run("start").status, Agent.success)
        let adopted = try Harness.status(pair)
        XCTAssertNotEqual(adopted["daemonPID"] as? Int, pid, "a new daemon")
        XCTAssertEqual(
            (adopted["guests"] as? [[String: Any]])?.map { $0["domain"] as? String },
            (first["guests"] as? [[String: Any]])?.map { $0["domain"] as? String }, "the same guests, adopted")

        // A takeover: the former backup serves while a fresh backup boots (degraded), then protected.
        try Harness.ftvm(["inject", "kernel-panic", "--name", pair])
        var seen: [Int32] = []
        try waitUntil("monitor degraded, then protected again") {
            let status = try agent.run("monitor").status
            if seen.last != status { seen.append(status) }
            return seen.contains(Agent.degraded) && status == Agent.success
        }
        XCTAssertEqual(seen.filter { $0 != Agent.success && $0 != Agent.degraded }, [], "only 0 and 190: \(seen)")
        XCTAssertEqual(try Harness.status(pair)["recoveries"] as? Int, 1)

        XCTAssertEqual(try agent.run("stop").status, Agent.success)
        XCTAssertEqual(try agent.run("monitor").status, Agent.notRunning)
        XCTAssertEqual(try Harness.leftovers(of: pair), [])
    }

    private func waitUntil(_ what: String, seconds: Double = 60, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return }
            usleep(100_000)
        }
        XCTFail("not within \(Int(seconds)) s: \(what)")
    }
}

/// What the agent says about itself and about a bad configuration; no pair is made.
final class ResourceAgentConfigurationTests: XCTestCase {
    override func setUpWithError() throws {
        try Harness.requireIntegration()
    }

    /// The pair name the checks use; none of them may make anything of it.
    private let pair = "hocf"

    func testMetaDataIsValidAgainstTheOCFDTD() throws {
        let agent = Agent(pair: pair)
        let metaData = try agent.run("meta-data")
        XCTAssertEqual(metaData.status, Agent.success)
        let file = NSTemporaryDirectory() + "ftvm-ocf-\(UUID().uuidString).xml"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try metaData.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        let lint = try Harness.run(
            ["xmllint", "--noout", "--dtdvalid", "/usr/share/resource-agents/ra-api-1.dtd", file])
        XCTAssertEqual(lint.status, 0, "meta-data is not valid against ra-api-1.dtd:\n\(lint.combined)")
        let parameters = try Harness.run(["xmllint", "--xpath", "//parameter/@name", file]).stdout
        for name in ["name", "image", "binary", "config", "up_timeout"] {
            XCTAssertTrue(parameters.contains("name=\"\(name)\""), "parameter \(name) in \(parameters)")
        }
        let actions = try Harness.run(["xmllint", "--xpath", "//action/@name", file]).stdout
        for name in ["start", "stop", "monitor", "meta-data", "validate-all"] {
            XCTAssertTrue(actions.contains("name=\"\(name)\""), "action \(name) in \(actions)")
        }
        XCTAssertEqual(
            try Harness.run(["xmllint", "--xpath", "string(/resource-agent/version)", file]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines), "1.1")
    }

    func testValidateAllAcceptsAGoodPairAndMakesNothing() throws {
        let output = try Agent(pair: pair).run("validate-all")
        XCTAssertEqual(output.status, Agent.success, output.combined)
        XCTAssertEqual(try Harness.leftovers(of: pair), [])
    }

    /// Each bad setting, with the code the OCF spec gives it: 6 (configured) is wrong on every
    /// node, so Pacemaker starts the pair nowhere; 5 (installed) is missing on this node, so
    /// Pacemaker tries another.
    func testValidateAllRejectsEachBadSettingWithItsCode() throws {
        let cases: [(String, [String: String], Int32, String)] = [
            ("bad name", ["OCF_RESKEY_name": "Bad_Name"], Agent.configured, "invalid pair name 'Bad_Name'"),
            ("no name", ["OCF_RESKEY_name": ""], Agent.configured, "'name' is required"),
            ("missing image", ["OCF_RESKEY_image": "/nonexistent/image"], Agent.installed, "no guest image"),
            ("missing binary", ["OCF_RESKEY_binary": "/nonexistent/ftvm"], Agent.installed, "no executable ftvm"),
            ("unreadable config", ["OCF_RESKEY_config": "/nonexistent/ftvm.toml"], Agent.installed, "not readable"),
            ("bad timeout", ["OCF_RESKEY_up_timeout": "soon"], Agent.configured, "up_timeout"),
        ]
        for (what, environment, code, reason) in cases {
            let output = try Agent(pair: pair).run("validate-all", environment: environment)
            XCTAssertEqual(output.status, code, "\(what): \(output.combined)")
            XCTAssertTrue(output.combined.contains(reason), "\(what) says why: \(output.combined)")
        }
        XCTAssertEqual(try Harness.leftovers(of: pair), [])
    }

    func testNotRootIsAPermissionError() throws {
        let agent = Agent(pair: pair)
        let output = try Harness.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", Agent.path, "validate-all"],
            environment: agent.environment)
        XCTAssertEqual(output.status, Agent.permission, output.combined)
    }

    func testActionsAndArgumentsOutsideTheSpec() throws {
        let agent = Agent(pair: pair)
        XCTAssertEqual(try agent.run("promote").status, Agent.unimplemented)
        XCTAssertEqual(try Harness.run([Agent.path], environment: agent.environment).status, Agent.badArguments)
        XCTAssertEqual(
            try Harness.run([Agent.path, "monitor", "extra"], environment: agent.environment).status,
            Agent.badArguments)
    }

    /// A probe (monitor, interval 0) on a node without ftvm finds the pair stopped there; a
    /// recurring monitor reports the missing binary.
    func testProbeWithoutTheBinaryFindsThePairStopped() throws {
        let agent = Agent(pair: pair)
        let missing = ["OCF_RESKEY_binary": "/nonexistent/ftvm"]
        XCTAssertEqual(
            try agent.run("monitor", environment: missing.merging(["OCF_RESKEY_CRM_meta_interval": "0"]) { $1 })
                .status, Agent.notRunning)
        XCTAssertEqual(
            try agent.run("monitor", environment: missing.merging(["OCF_RESKEY_CRM_meta_interval": "10000"]) { $1 })
                .status, Agent.installed)
    }
}

/// contrib/ocf/ftvm for one pair, with the exit codes of the OCF 1.1 spec (written out here,
/// not taken from the agent, so a wrong constant in it fails the tests).
struct Agent {
    static let path = Harness.repository.appendingPathComponent("contrib/ocf/ftvm").path

    static let success: Int32 = 0
    static let genericError: Int32 = 1
    static let badArguments: Int32 = 2
    static let unimplemented: Int32 = 3
    static let permission: Int32 = 4
    static let installed: Int32 = 5
    static let configured: Int32 = 6
    static let notRunning: Int32 = 7
    static let degraded: Int32 = 190

    var pair: String

    var environment: [String: String] {
        [
            "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": pair, "OCF_RESKEY_name": pair,
            "OCF_RESKEY_binary": Harness.ftvm, "OCF_RESKEY_CRM_meta_interval": "10000",
        ]
    }

    func run(_ action: String, environment extra: [String: String] = [:]) throws -> Harness.Output {
        try Harness.run([Self.path, action], environment: environment.merging(extra) { $1 })
    }
}
