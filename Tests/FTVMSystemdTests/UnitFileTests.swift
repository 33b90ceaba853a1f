import Foundation
import XCTest

/// contrib/systemd/ftvm@.service passes `systemd-analyze verify` (no systemd PID 1 is needed
/// for that). It runs against a scratch root holding the unit, the host's own units (for the
/// dependencies every service has: sysinit.target, …) and an executable where ExecStart names
/// `ftvm`, so the check resolves the binary as it would on an installed host.
final class UnitFileTests: XCTestCase {
    static let unit = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("contrib/systemd/ftvm@.service")
    static let analyze = "/usr/bin/systemd-analyze"

    private var root: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.analyze) else {
            throw XCTSkip("\(Self.analyze) is missing: install Debian's systemd package (scripts/setup.sh does)")
        }
        root = FileManager.default.temporaryDirectory.appendingPathComponent("ftvm-unit-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        let units = root.appendingPathComponent("etc/systemd/system")
        try FileManager.default.createDirectory(at: units, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.unit, to: units.appendingPathComponent("ftvm@.service"))
        let hostUnits = root.appendingPathComponent("usr/lib/systemd")
        try FileManager.default.createDirectory(at: hostUnits, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: URL(fileURLWithPath: "/usr/lib/systemd/system"), to: hostUnits.appendingPathComponent("system"))
    }

    override func tearDownWithError() throws { if let root { try? FileManager.default.removeItem(at: root) } }

    /// The unit's ExecStart program (the first word after '=').
    private func execStartProgram() throws -> String {
        let text = try String(contentsOf: Self.unit, encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        return String(line.dropFirst("ExecStart=".count).split(separator: " ")[0])
    }

    private func installProgram() throws {
        let program = root.appendingPathComponent(String(try execStartProgram().dropFirst()))
        try FileManager.default.createDirectory(
            at: program.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: "/bin/true"), to: program)
    }

    private func verify() throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.analyze)
        process.arguments = ["verify", "--root=\(root.path)", "ftvm@hcfg.service"]
        process.currentDirectoryURL = root
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testVerifyPassesWithoutAWarning() throws {
        try installProgram()
        let result = try verify()
        XCTAssertEqual(result.status, 0, result.output)
        // Unknown keys and bad values are only warnings (exit 0): any output is a failure.
        XCTAssertEqual(result.output, "")
    }

    /// The same check fails when the program is not where ExecStart says: the test can fail.
    func testVerifyFailsWithoutTheProgram() throws {
        let result = try verify()
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("is not executable"), result.output)
    }

    func testExecStartIsTheInstalledBinary() throws {
        XCTAssertEqual(try execStartProgram(), "/usr/local/bin/ftvm")
    }
}
