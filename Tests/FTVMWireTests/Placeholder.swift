import XCTest
final class FTVMWireTestsPlaceholder: XCTestCase { func testNothing() {} }
