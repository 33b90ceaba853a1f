import Foundation
import Glibc
import XCTest

@testable import FTVMController

/// One daemon per pair, told by a lock rather than by the control socket (which a daemon that
/// still exits, or an operator, may have removed).
final class PairLockTests: XCTestCase {
    func testASecondLockIsRefusedUntilTheFirstIsReleased() throws {
        try XCTSkipUnless(getuid() == 0, "needs root for /run/ftvm")
        let config = try PairConfig(name: "lk" + String(UInt32.random(in: 0...99_999_999)))
        try FileManager.default.createDirectory(atPath: config.runDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: config.runDirectory) }
        try "4242\n".write(toFile: config.pidFilePath, atomically: true, encoding: .utf8)
        let first = try PairHost.lock(config)
        XCTAssertThrowsError(try PairHost.lock(config)) { error in
            XCTAssertEqual("\(error)".contains("already has a daemon (pid 4242)"), true, "\(error)")
        }
        close(first)
        close(try PairHost.lock(config))
    }
}
