import XCTest

/// scripts/bench_overhead.py's own check of what it parses and prints (wrk's figures and error
/// counts, the per-MTU table, the `--json` line and its six keys, `--mtus`): no guests, no root,
/// so it runs with the unit tests too.
final class BenchOverheadScriptTests: XCTestCase {
    func testSelfTestPasses() throws {
        let script = Harness.repository.appendingPathComponent("scripts/bench_overhead.py").path
        let result = try Harness.run(["python3", script, "--self-test"])
        XCTAssertEqual(result.status, 0, result.combined)
        XCTAssertTrue(result.stdout.contains("self-test"), result.combined)
    }
}
