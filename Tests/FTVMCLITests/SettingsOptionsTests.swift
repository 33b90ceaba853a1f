import FTVMController
import Foundation
import XCTest

@testable import FTVMCLI

/// `ftvm up` and `ftvm daemon` options over a config file, as the commands parse them.
final class SettingsOptionsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ftvm-cli-\(getpid())-\(name.hash)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func file(_ text: String) throws -> String {
        let url = directory.appendingPathComponent("pair.yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testGivenOptionsOverrideTheFileAndTheRestComesFromIt() throws {
        let path = try file("name: hcfg2\nhealth:\n  tick-ms: 200\n  fence: destroy\nlog:\n  size-mib: 64\n")
        let options = try Daemon.parse(["--config", path, "--tick-ms", "300", "--log-mib", "32"])
        let config = try options.settings.resolve().config
        XCTAssertEqual(config.name, "hcfg2")
        XCTAssertEqual(config.health.tickMillis, 300)
        XCTAssertEqual(config.fence, .destroy)
        XCTAssertEqual(config.logChunks * config.logChunkSize, 32 << 20)
        // Without options, the file; without either, the defaults.
        XCTAssertEqual(try Daemon.parse(["--config", path]).settings.resolve().config.health.tickMillis, 200)
        XCTAssertEqual(try Daemon.parse([]).settings.resolve().config.health.tickMillis, HealthPolicy().tickMillis)
        XCTAssertEqual(try Daemon.parse([]).settings.resolve().config.name, PairConfig.defaultName)
    }

    func testTheOptionalFileIsReadWhenItExistsAndConfigWins() throws {
        let path = try file("health:\n  tick-ms: 250\n")
        let missing = directory.appendingPathComponent("absent.yaml").path
        let daemon = try Daemon.parse(["--name", "hcfg2", "--config-if-present", path])
        XCTAssertEqual(try daemon.settings.resolve(optionalFile: daemon.configIfPresent).config.health.tickMillis, 250)
        let without = try Daemon.parse(["--name", "hcfg2", "--config-if-present", missing])
        XCTAssertEqual(
            try without.settings.resolve(optionalFile: without.configIfPresent).config.health.tickMillis,
            HealthPolicy().tickMillis)
        // --config names a file that must exist.
        XCTAssertThrowsError(try Daemon.parse(["--config", missing]).settings.resolve()) {
            XCTAssertEqual("\($0)", "cannot read config file \(missing): no such file")
        }
    }

    func testOptionErrorsNameTheOption() throws {
        XCTAssertThrowsError(try Up.parse(["--tick-ms", "5"]).settings.resolve()) {
            XCTAssertEqual("\($0)", "--tick-ms: must be 10-10000, not 5")
        }
        XCTAssertThrowsError(try Up.parse(["--http-ports", "80,http"]).settings.resolve()) {
            XCTAssertEqual("\($0)", "--http-ports: '80,http' is not a list of ports like 80,8080 or 'none'")
        }
        XCTAssertThrowsError(try Up.parse(["--fence", "off"]).settings.resolve()) {
            XCTAssertEqual("\($0)", "--fence: must be pause or destroy, not 'off'")
        }
    }

    /// `up` hands the daemon the file (absolute) and the options that were given, nothing else,
    /// so the daemon resolves the same settings.
    func testUpPassesTheFileAndTheGivenOptionsToTheDaemon() throws {
        let path = try file("health:\n  tick-ms: 200\nnetwork:\n  mtu: 1500\n")
        let up = try Up.parse(["--config", path, "--name", "hcfg2", "--missed-ticks", "9", "--http-ports", "none"])
        XCTAssertEqual(up.settings.arguments, ["--config", path, "--missed-ticks", "9", "--http-ports", "none"])
        let daemon = try Daemon.parse(["--name", "hcfg2"] + up.settings.arguments)
        XCTAssertEqual(try daemon.settings.resolve(), try up.settings.resolve())
        XCTAssertEqual(try daemon.settings.resolve().config.mtu, 1500)
    }

    /// A typo in the file stops `up` before it makes anything: no run directory (or nothing new
    /// in one an earlier pair hcfg2 left), no namespace, no log.
    func testUpWithABadFileMakesNothing() throws {
        let config = try PairConfig(name: "hcfg2")
        guard !FileManager.default.fileExists(atPath: config.namespacePath) else {
            throw XCTSkip("\(config.namespacePath) exists (a pair hcfg2 is up?); cannot tell what up made")
        }
        let runFiles = { try? FileManager.default.contentsOfDirectory(atPath: config.runDirectory).sorted() }
        let before = runFiles()
        let path = try file("name: hcfg2\nhealth:\n  tick-ms: 100\n  misssed-ticks: 3\n")
        XCTAssertThrowsError(try Up.parse(["--config", path]).run()) {
            XCTAssertEqual(
                "\($0)", "\(path):4:3: unknown key 'health.misssed-ticks'; did you mean 'health.missed-ticks'?")
        }
        XCTAssertEqual(runFiles(), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.namespacePath))
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.logPath))
    }

    func testInjectWhenProtectedTakesSecondsWithinAnHour() throws {
        XCTAssertEqual(try Inject.parse(["kernel-panic", "--when-protected", "30"]).whenProtected, 30)
        XCTAssertNil(try Inject.parse(["kernel-panic"]).whenProtected, "without it, the fault goes in at once")
        for bad in ["-1", "3601", "nan"] {
            XCTAssertThrowsError(try Inject.parse(["kernel-panic", "--when-protected=\(bad)"]), bad) { error in
                XCTAssertTrue(Inject.message(for: error).contains("0 to 3600"), Inject.message(for: error))
            }
        }
    }
}

/// The systemd unit's command line is one `ftvm daemon` accepts.
final class UnitCommandLineTests: XCTestCase {
    func testExecStartParses() throws {
        let unit = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("contrib/systemd/ftvm@.service")
        let text = try String(contentsOf: unit, encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let words = line.dropFirst("ExecStart=".count).replacingOccurrences(of: "%i", with: "hcfg2")
            .split(separator: " ").map(String.init)
        XCTAssertEqual(words[1], "daemon")
        let daemon = try Daemon.parse(Array(words.dropFirst(2)))
        XCTAssertEqual(daemon.settings.name, "hcfg2")
        XCTAssertEqual(daemon.configIfPresent, "/etc/ftvm/hcfg2.yaml")
    }
}
