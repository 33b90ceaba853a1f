import FTVMVirt
import XCTest

final class LifecycleEventTests: XCTestCase {
    func testDecodesLibvirtNumbers() {
        XCTAssertEqual(LifecycleEvent(event: 0, detail: 0), .defined(.added))
        XCTAssertEqual(LifecycleEvent(event: 1, detail: 0), .undefined)
        XCTAssertEqual(LifecycleEvent(event: 2, detail: 0), .started(.booted))
        XCTAssertEqual(LifecycleEvent(event: 3, detail: 0), .suspended(.paused))
        XCTAssertEqual(LifecycleEvent(event: 4, detail: 0), .resumed(.unpaused))
        XCTAssertEqual(LifecycleEvent(event: 5, detail: 1), .stopped(.destroyed))
        XCTAssertEqual(LifecycleEvent(event: 5, detail: 5), .stopped(.failed))
        XCTAssertEqual(LifecycleEvent(event: 6, detail: 2), .shutdown(.host))
        XCTAssertEqual(LifecycleEvent(event: 8, detail: 0), .crashed(.panicked))
        XCTAssertEqual(LifecycleEvent(event: 5, detail: 42), .stopped(.other(42)))
        XCTAssertEqual(LifecycleEvent(event: 99, detail: 1), .unknown(event: 99, detail: 1))
        XCTAssertEqual("\(LifecycleEvent.crashed(.panicked))", "crashed (panicked)")
    }

    func testDomainStateDescriptions() {
        XCTAssertEqual(DomainState(state: 3, reason: 1), .pausedByUser)
        XCTAssertEqual("\(DomainState.pausedByUser)", "paused (user)")
        XCTAssertEqual("\(DomainState.panicked)", "crashed (panicked)")
        XCTAssertEqual("\(DomainState(state: 5, reason: 6))", "shut off (failed)")
        XCTAssertFalse(DomainState.shutoff(reason: 2).isActive)
        XCTAssertTrue(DomainState.panicked.isActive)
        XCTAssertEqual("\(DomainState(state: 1, reason: 77))", "running (reason 77)")
    }
}
