import Foundation
import Synchronization
import XCTest

/// Shared plumbing for tests that boot real guests: running commands, the built `ftvm`, the
/// independent references, and checks that a pair left nothing behind.
enum Harness {
    /// Integration tests need root, libvirt and a built image: `scripts/test.sh` prepares all
    /// of it and sets FTVM_INTEGRATION=1. Without it they are skipped, loudly.
    static func requireIntegration() throws {
        guard ProcessInfo.processInfo.environment["FTVM_INTEGRATION"] == "1" else {
            throw XCTSkip("integration tests run through scripts/test.sh (FTVM_INTEGRATION=1)")
        }
    }

    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `ftvm` executable under test: this checkout's release build, which
    /// `scripts/prepare.sh` (run by `scripts/test.sh`) makes; FTVM_BIN overrides.
    static var ftvm: String {
        ProcessInfo.processInfo.environment["FTVM_BIN"]
            ?? repository.appendingPathComponent(".build/release/ftvm").path
    }

    static let defaultImage = "/var/lib/ftvm/images/default"

    /// The image tests that need this checkout's guest binaries boot: FTVM_TEST_IMAGE_DIR (an
    /// image built with `images/build.sh --out DIR`), else the shared default.
    static var testImage: String { ProcessInfo.processInfo.environment["FTVM_TEST_IMAGE_DIR"] ?? defaultImage }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        var combined: String { stdout + stderr }
    }

    /// Runs a command to completion (stdin from /dev/null).
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], input: URL? = nil) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = try input.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
        try process.run()
        // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
        let errData = LockedData()
        let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errData.isSet { usleep(1000) }
        return Output(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.data, as: UTF8.self))
    }

    /// Runs `ftvm ARGS` and fails the test (with its output) when it exits non-zero.
    @discardableResult
    static func ftvm(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Output {
        let output = try run([ftvm] + arguments)
        XCTAssertEqual(
            output.status, 0, "ftvm \(arguments.joined(separator: " ")) failed:\n\(output.combined)", file: file,
            line: line)
        return output
    }

    /// One JSON object per line (`ftvm chaos --json`); a line that is not one fails the test.
    static func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
    }

    /// The pair's status as JSON.
    static func status(_ name: String) throws -> [String: Any] {
        let output = try ftvm(["status", "--name", name, "--json"])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
    }

    /// `ftvm connections --json`: the logged connections.
    static func connections(_ name: String) throws -> [[String: Any]] {
        let output = try ftvm(["connections", "--name", name, "--json"])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
    }

    /// `virsh list --all` as name → state, straight from libvirt (not through ftvm).
    static func virshDomains() throws -> [String: String] {
        let output = try run(["virsh", "-c", "qemu:///system", "list", "--all"])
        var domains: [String: String] = [:]
        for line in output.stdout.split(separator: "\n").dropFirst(2) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3 else { continue }
            domains[String(fields[1])] = fields[2...].joined(separator: " ")
        }
        return domains
    }

    /// The pair's own domains (ftvm-NAME-*) and their states: other pairs may run on the host.
    static func pairDomains(_ pair: String) throws -> [String: String] {
        try virshDomains().filter { $0.key.hasPrefix("ftvm-\(pair)-") }
    }

    /// SHA-256 of the splitmix64 stream, computed by the independent Python reference.
    static func referenceStreamSHA256(count: Int, seed: UInt64) throws -> String {
        let script = repository.appendingPathComponent("Tests/tools/splitmix.py").path
        return try run(["python3", script, "\(count)", "\(seed)"]).stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    static func sha256(file: String) throws -> String {
        String(try run(["sha256sum", file]).stdout.prefix(64))
    }

    struct WorkloadReport {
        var ok: Bool
        var triggersFired: Int
        var bytesOK: Int
        var lostOrCorrupted: Int
        /// The failed checks and the end of the driver's log, for assertion messages.
        var summary: String
        /// What the trigger commands printed.
        var triggerOutput: String
    }

    static let serviceAddress = "10.77.0.2"

    /// Runs Tests/tools/workload.py (SUBCOMMAND, options…) in the pair's client namespace.
    static func workload(
        pair: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line
    ) throws -> WorkloadReport {
        let script = repository.appendingPathComponent("Tests/tools/workload.py").path
        let output = try run(
            [
                "ip", "netns", "exec", "ftvm-\(pair)", "python3", script, arguments[0], "--host", serviceAddress,
                "--timeout", "240",
            ] + arguments.dropFirst())
        let json = output.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let object = try XCTUnwrap(
            try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            "workload printed no report:\n\(output.combined)", file: file, line: line)
        let totals = object["totals"] as? [String: Any] ?? [:]
        let failures = object["failures"] as? [String] ?? []
        return WorkloadReport(
            ok: object["ok"] as? Bool ?? false, triggersFired: totals["triggers_fired"] as? Int ?? 0,
            bytesOK: totals["bytes_ok"] as? Int ?? 0, lostOrCorrupted: totals["lost_or_corrupted"] as? Int ?? -1,
            summary: "failures: \(failures)\n\(output.stderr.suffix(3000))",
            triggerOutput: (object["triggers"] as? [[String: Any]] ?? []).compactMap { $0["output"] as? String }
                .joined())
    }

    /// Runs Tests/tools/exchanges.py (SUBCOMMAND, options…) in the pair's client namespace and
    /// returns its JSON report (its "ok", figures and failures).
    static func exchanges(
        pair: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line
    ) throws
        -> [String: Any]
    {
        let script = repository.appendingPathComponent("Tests/tools/exchanges.py").path
        let output = try run(["ip", "netns", "exec", "ftvm-\(pair)", "python3", script] + arguments)
        let json = output.stdout.split(separator: "\n").last.map(String.init) ?? ""
        var report = try XCTUnwrap(
            try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            "exchanges.py printed no report:\n\(output.combined)", file: file, line: line)
        report["log"] = String(output.stderr.suffix(3000))
        return report
    }

    /// The pair's last recovery once it is recorded with its replay (a takeover records it when
    /// the replay is done, which can be after the clients saw their connections carry on).
    static func recovery(
        _ pair: String, after previous: [String: Any]?, file: StaticString = #filePath, line: UInt = #line
    )
        throws -> [String: Any]
    {
        for _ in 0..<300 {
            if let recovery = try status(pair)["lastRecovery"] as? [String: Any], recovery["replay"] != nil,
                recovery["startedAt"] as? String != previous?["startedAt"] as? String
            {
                return recovery
            }
            usleep(100_000)
        }
        XCTFail("no new recovery with a replay after 30 s", file: file, line: line)
        return [:]
    }

    /// A curl download of the splitmix stream from the demo service, rate-limited so it is
    /// certainly in flight while a test does something to the pair; `check` waits for it and
    /// compares its bytes with the independent reference.
    final class Download {
        let size: Int
        let seed: UInt64
        let file = NSTemporaryDirectory() + "ftvm-download-\(UUID().uuidString)"
        let process = Process()

        /// `base` is the URL before `/bytes/N` (the demo service itself by default). `endpoint`
        /// `chunked` asks for the same bytes chunked, with no validator: a replay then regenerates
        /// the answer instead of resuming it with a range, and takes longer.
        /// `curlOptions` go to curl as they are (an HTTPS download's `--cacert`). `url`: a file that
        /// holds the same stream instead (nginx's `splitmix-32M.bin`: 32 MiB, seed 1).
        init(
            pair: String, size: Int, seed: UInt64, rate: String = "3M",
            base: String = "http://\(Harness.serviceAddress)", endpoint: String = "bytes", curlOptions: String = "",
            url: String? = nil
        ) throws {
            self.size = size
            self.seed = seed
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            // curl's rate limit paces its reads, not the sender: with the host's 32 MiB
            // tcp_rmem the kernel would take the whole download at the links' speed long before
            // a fault lands "mid-transfer". The client's namespace gets a 4 MiB receive buffer.
            process.arguments = [
                "ip", "netns", "exec", "ftvm-\(pair)", "sh", "-c",
                "sysctl -qw net.ipv4.tcp_rmem='4096 131072 4194304' && exec curl -sS --fail --max-time 180 "
                    + "--limit-rate \(rate) -o \(file) -w '%{num_connects}' \(curlOptions) "
                    + "'\(url ?? "\(base)/\(endpoint)/\(size)?seed=\(seed)")' > \(file).connects",
            ]
            try process.run()
        }

        deinit {
            if process.isRunning { process.terminate() }
            try? FileManager.default.removeItem(atPath: file)
            try? FileManager.default.removeItem(atPath: file + ".connects")
        }

        /// How many TCP connections curl opened (1: the download never reconnected); nil before
        /// it ended.
        var connects: Int? {
            (try? String(contentsOfFile: file + ".connects", encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }

        var bytesWritten: Int { (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0 }

        func check(file: StaticString = #filePath, line: UInt = #line) throws {
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "curl exit status", file: file, line: line)
            XCTAssertEqual(
                try Harness.sha256(file: self.file), try Harness.referenceStreamSHA256(count: size, seed: seed),
                "the download is byte-exact", file: file, line: line)
        }
    }

    /// A CA and a server certificate for `address` (its subjectAltName) signed by it, made with
    /// openssl in `directory`: what an operator brings to `--tls-cert` and `--tls-key`.
    struct TestCertificate: Sendable {
        let directory: String
        let ca: String
        let certificate: String
        let key: String

        init(address: String, directory: String) {
            self.directory = directory
            ca = "\(directory)/ca.pem"
            certificate = "\(directory)/service.pem"
            key = "\(directory)/service.key"
            let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            let commands = [
                ["mkdir", "-p", directory],
                ["openssl", "req", "-x509"] + curve + [
                    "-keyout", "\(directory)/ca.key", "-out", ca, "-days", "2", "-subj", "/CN=ftvm test CA",
                ],
                ["openssl", "req"] + curve + [
                    "-keyout", key, "-out", "\(directory)/service.csr", "-subj", "/CN=\(address)",
                ],
                ["sh", "-c", "echo subjectAltName=IP:\(address) > \(directory)/ext"],
                [
                    "openssl", "x509", "-req", "-in", "\(directory)/service.csr", "-CA", ca, "-CAkey",
                    "\(directory)/ca.key", "-CAcreateserial", "-out", certificate, "-days", "2", "-extfile",
                    "\(directory)/ext",
                ],
                ["chmod", "600", key],
            ]
            for command in commands { _ = try? Harness.run(command) }
        }

        /// The options that serve HTTPS with it (`ports`: PUBLIC:GUEST each).
        func options(ports: [String]) -> [String] {
            ports.flatMap { ["--tls-port", $0] } + ["--tls-cert", certificate, "--tls-key", key]
        }
    }

    /// Waits (up to 60 s) until the pair is protected: a paused backup is ready.
    static func waitUntilProtected(_ pair: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for _ in 0..<300 {
            if try status(pair)["phase"] as? String == "protected" { return }
            usleep(200_000)
        }
        XCTFail("pair \(pair) is not protected after 60 s", file: file, line: line)
    }

    /// Everything a pair may create, so a test can assert that `down` removed it all.
    static func leftovers(of name: String) throws -> [String] {
        var found: [String] = []
        found += try virshDomains().keys.filter { $0.hasPrefix("ftvm-\(name)-") }.map { "domain \($0)" }
        found += ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [])
            .filter { $0.hasPrefix("ftvm-\(name)-") }.map { "shm \($0)" }
        if FileManager.default.fileExists(atPath: "/run/netns/ftvm-\(name)") { found.append("netns ftvm-\(name)") }
        if FileManager.default.fileExists(atPath: "/sys/class/net/ftvm-\(name)") {
            found.append("host tap ftvm-\(name)")
        }
        // HTTPS on the host: the terminator's namespaces and HAProxy (its command line names the
        // pair's run directory).
        for side in ["tlsf", "tlsb"] where FileManager.default.fileExists(atPath: "/run/netns/ftvm-\(name)-\(side)") {
            found.append("netns ftvm-\(name)-\(side)")
        }
        for process in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(process) != nil {
            let commandLine = (try? String(contentsOfFile: "/proc/\(process)/cmdline", encoding: .utf8)) ?? ""
            if commandLine.contains("/run/ftvm/\(name)/haproxy.cfg") { found.append("haproxy pid \(process)") }
        }
        // The guests' link taps, known by their alias (GuestTaps).
        for tap in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
        where tap.hasPrefix("ftvg") {
            let alias = try? String(contentsOfFile: "/sys/class/net/\(tap)/ifalias", encoding: .utf8)
            if alias?.hasPrefix("ftvm pair \(name) ") == true { found.append("link tap \(tap)") }
        }
        return found
    }
}

/// A test that owns one pair: removed before and after every test, even a failed one, and
/// checked afterwards for anything left behind.
class PairTestCase: XCTestCase {
    /// Each subclass names its own pair, so suites never share one.
    var pair: String { preconditionFailure("\(Self.self) must name its pair") }

    override func setUpWithError() throws {
        try Harness.requireIntegration()
        try Harness.run([Harness.ftvm, "down", "--name", pair])
    }

    override func tearDownWithError() throws {
        guard ProcessInfo.processInfo.environment["FTVM_INTEGRATION"] == "1" else { return }
        try Harness.run([Harness.ftvm, "down", "--name", pair])
        XCTAssertEqual(try Harness.leftovers(of: pair), [], "down left things behind")
    }
}

/// A suite whose tests share one pair, one after another (so each also proves the pair survived
/// the tests before it): up once before them, down and checked for leftovers by the suite's last
/// test, which each subclass declares as `testZZZDownLeavesNothingBehind`.
class SharedPairTestCase: XCTestCase {
    class var pair: String { preconditionFailure("\(self) must name its pair") }
    /// More `ftvm up` options for the pair (its MTU, an image).
    class var upOptions: [String] { [] }

    /// Why a suite's class `setUp` could not bring its pair up, by suite: each of its tests then
    /// fails with it (XCTest drops what the class `setUp` itself asserts).
    private static let bringUpFailures = Mutex<[ObjectIdentifier: String]>([:])

    override class func setUp() {
        super.setUp()
        guard ProcessInfo.processInfo.environment["FTVM_INTEGRATION"] == "1" else { return }
        var failure: String?
        do {
            for arguments in [["down", "--name", pair], ["up", "--name", pair] + upOptions] {
                let output = try Harness.run([Harness.ftvm] + arguments)
                if output.status != 0 {
                    failure = "ftvm \(arguments.joined(separator: " ")) failed:\n\(output.combined)"
                    break
                }
            }
        } catch {
            failure = "could not run ftvm: \(error)"
        }
        bringUpFailures.withLock { $0[ObjectIdentifier(self)] = failure }
    }

    /// Cleans up after a partial run (a filter that left out the last test); the check that
    /// `down` left nothing behind is the last test's, where an assertion counts.
    override class func tearDown() {
        if ProcessInfo.processInfo.environment["FTVM_INTEGRATION"] == "1" {
            _ = try? Harness.run([Harness.ftvm, "down", "--name", pair])
        }
        super.tearDown()
    }

    override func setUpWithError() throws {
        try Harness.requireIntegration()
        if let failure = Self.bringUpFailures.withLock({ $0[ObjectIdentifier(Self.self)] }) {
            throw TestFailure(description: "the suite's pair \(Self.pair) is not up: \(failure)")
        }
    }

    /// The body of each subclass's `testZZZDownLeavesNothingBehind`, named to sort last: XCTest on
    /// Linux runs a suite's tests in name order. (Had another test run after it, that one would
    /// fail on the missing pair, not pass.)
    func downLeavesNothingBehind(file: StaticString = #filePath, line: UInt = #line) throws {
        try Harness.ftvm(["down", "--name", Self.pair], file: file, line: line)
        XCTAssertEqual(try Harness.leftovers(of: Self.pair), [], "down left things behind", file: file, line: line)
    }
}

/// A failure that ends a test, with what was seen: thrown where going on would only add noise
/// (a suite's pair that never came up, a premise that does not hold).
struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// A report computed on a thread of its own (a client that runs beside another), for the test
/// thread to wait for.
final class BackgroundReport: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<[String: Any], Error>?

    init(_ body: @escaping @Sendable () throws -> [String: Any]) {
        let thread = Thread { [self] in
            let result = Result { try body() }
            lock.withLock { value = result }
        }
        thread.start()
    }

    /// The report, once it is there (at most `seconds`); throws what the body threw.
    func wait(seconds: Double, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let value = lock.withLock({ value }) { return try value.get() }
            usleep(100_000)
        }
        XCTFail("no report within \(seconds) s", file: file, line: line)
        return [:]
    }
}

/// A Data handed from a reader thread to the test thread.
final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Data?
    func set(_ data: Data) { lock.withLock { value = data } }
    var isSet: Bool { lock.withLock { value != nil } }
    var data: Data { lock.withLock { value ?? Data() } }
}
