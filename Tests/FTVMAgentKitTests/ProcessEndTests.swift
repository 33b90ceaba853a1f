import FTVMAgentKit
import Glibc
import XCTest

/// A service process seen on its way out before its reap (`ProcessEnd`), from /proc texts.
final class ProcessEndTests: XCTestCase {
    /// A stat line: pid (comm) state, ppid … flags (the 9th field) … exit_code (the 52nd).
    private func stat(state: Character, flags: UInt64, exitCode: Int32 = 0) -> String {
        let middle = (0..<42).map { _ in "0" }.joined(separator: " ")  // fields 10 to 51
        return "107 (ftvm-demo (x)) \(state) 1 107 107 0 -1 \(flags) \(middle) \(exitCode)\n"
    }

    private func status(shdPnd: String = "0000000000000000", sigPnd: String = "0000000000000000") -> String {
        "Name:\tftvm-demo\nState:\tR (running)\nSigPnd:\t\(sigPnd)\nShdPnd:\t\(shdPnd)\nSigBlk:\t0000000000000000\n"
    }

    func testARunningProcessIsNotEnding() {
        XCTAssertNil(ProcessEnd.waitStatus(stat: stat(state: "R", flags: 0x400040), status: status()))
        XCTAssertNil(ProcessEnd.waitStatus(stat: stat(state: "S", flags: 0x400040), status: nil))
    }

    func testAPendingSIGKILLDoomsIt() {
        XCTAssertEqual(
            ProcessEnd.waitStatus(stat: stat(state: "R", flags: 0x400040), status: status(shdPnd: "0000000000000100")),
            SIGKILL)
        XCTAssertEqual(
            ProcessEnd.waitStatus(stat: stat(state: "S", flags: 0x400040), status: status(sigPnd: "0000000000000100")),
            SIGKILL)
        XCTAssertNil(
            ProcessEnd.waitStatus(stat: stat(state: "S", flags: 0x400040), status: status(shdPnd: "0000000000004000")),
            "SIGTERM may be handled")
    }

    func testAnExitingOrZombieProcessReportsItsStatus() {
        XCTAssertEqual(ProcessEnd.waitStatus(stat: stat(state: "R", flags: 0x400044, exitCode: 9), status: nil), 9)
        XCTAssertEqual(ProcessEnd.waitStatus(stat: stat(state: "Z", flags: 0x400044, exitCode: 256), status: nil), 256)
        XCTAssertEqual(ProcessEnd.waitStatus(stat: stat(state: "Z", flags: 0, exitCode: 11), status: nil), 11)
        XCTAssertEqual(
            ProcessEnd.waitStatus(stat: stat(state: "D", flags: 0x4), status: status(shdPnd: "0000000000000100")),
            SIGKILL, "exiting, its code not set yet: the pending SIGKILL")
        XCTAssertEqual(ProcessEnd.waitStatus(stat: stat(state: "D", flags: 0x4), status: nil), 0)
    }

    /// This process: running, nothing pending.
    func testTheRealProcFilesOfARunningProcess() throws {
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        XCTAssertNil(ProcessEnd.waitStatus(stat: stat, status: status))
    }

    /// A real child killed and not yet reaped: a zombie whose status is SIGKILL's, as `waitpid`
    /// then reports it (the exit code's field is where this kernel puts it).
    func testAKilledChildBeforeItsReap() throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["60"]
        try child.run()
        let pid = child.processIdentifier
        XCTAssertEqual(kill(pid, SIGKILL), 0)
        var seen: Int32?
        for _ in 0..<100 where seen == nil {
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            seen = stat.flatMap { ProcessEnd.waitStatus(stat: $0, status: status) }
            usleep(1000)
        }
        XCTAssertEqual(seen, SIGKILL)
        child.waitUntilExit()
    }
}
