import FTVMSystem
import Foundation
import XCTest

final class UnixListenerTests: XCTestCase {
    /// A daemon that still exits after `ftvm down` must not remove the control socket of the
    /// daemon `ftvm up` started meanwhile on the same path.
    func testAListenerRemovesOnlyTheSocketItBound() throws {
        let path = NSTemporaryDirectory() + "ftvm-listener-\(UUID().uuidString).sock"
        var first: UnixListener? = try UnixListener(path: path)
        let second = try UnixListener(path: path)  // binds the path again
        first = nil
        XCTAssertNil(first)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "the successor's socket was removed")
        _ = second.fd
        var only: UnixListener? = try UnixListener(path: path + "2")
        only = nil
        XCTAssertNil(only)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "2"), "a listener's own socket stays behind")
    }
}
