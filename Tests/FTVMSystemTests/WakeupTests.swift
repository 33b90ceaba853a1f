import FTVMSystem
import Glibc
import XCTest

/// `Wakeup`: readable after a signal (from any thread), unreadable again after one clear however
/// many signals came before it.
final class WakeupTests: XCTestCase {
    private func readable(_ wakeup: Wakeup, waitingMillis: Int32 = 0) -> Bool {
        var entry = pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, waitingMillis) == 1
    }

    func testASignalWakesAPollUntilCleared() throws {
        let wakeup = try Wakeup()
        XCTAssertFalse(readable(wakeup))
        wakeup.signal()
        wakeup.signal()
        XCTAssertTrue(readable(wakeup))
        wakeup.clear()
        XCTAssertFalse(readable(wakeup), "one clear takes every signal made before it")
        wakeup.clear()
        XCTAssertFalse(readable(wakeup), "clearing an unsignalled wakeup neither blocks nor signals it")
    }

    func testASignalFromAnotherThreadEndsAWaitingPoll() throws {
        let wakeup = try Wakeup()
        Thread { wakeup.signal() }.start()
        XCTAssertTrue(readable(wakeup, waitingMillis: 10_000))
    }
}
