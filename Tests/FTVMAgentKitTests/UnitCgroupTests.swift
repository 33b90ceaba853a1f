import XCTest

@testable import FTVMAgentKit

final class UnitCgroupTests: XCTestCase {
    /// `cgroup.events` as Linux 6.1 writes it for a unit with processes and for an empty one.
    func testPopulated() {
        XCTAssertEqual(UnitCgroup.populated(events: "populated 1\nfrozen 0\n"), true)
        XCTAssertEqual(UnitCgroup.populated(events: "populated 0\nfrozen 0\n"), false)
        XCTAssertEqual(UnitCgroup.populated(events: "frozen 0\n"), nil)
        XCTAssertEqual(UnitCgroup.populated(events: ""), nil)
    }

    func testPids() {
        XCTAssertEqual(UnitCgroup.pids(procs: "412\n413\n"), [412, 413])
        XCTAssertEqual(UnitCgroup.pids(procs: ""), [])
    }

    /// The parent pid is the 4th field of /proc/PID/stat, counted after the command name, which
    /// may hold spaces and parentheses.
    func testParentPID() {
        XCTAssertEqual(UnitCgroup.parentPID(stat: "412 (nginx) S 1 412 412 0 -1 4194624 83 0"), 1)
        XCTAssertEqual(UnitCgroup.parentPID(stat: "413 (nginx: worker (x) y) S 412 412 412 0 -1"), 412)
        XCTAssertNil(UnitCgroup.parentPID(stat: "413 nginx"))
        XCTAssertNil(UnitCgroup.parentPID(stat: "413 (nginx) S"))
    }

    /// The main process is systemd's child, whatever its place in the list.
    func testMainPID() {
        XCTAssertEqual(UnitCgroup.mainPID([(413, 412), (412, 1)]), 412)
        XCTAssertEqual(UnitCgroup.mainPID([(500, 499), (501, nil)]), 500)
        XCTAssertNil(UnitCgroup.mainPID([]))
    }

    func testDirectory() {
        XCTAssertEqual(UnitCgroup.directory(ofUnit: "nginx.service"), "/sys/fs/cgroup/system.slice/nginx.service")
    }
}
