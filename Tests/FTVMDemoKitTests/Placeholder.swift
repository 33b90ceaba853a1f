import XCTest
final class FTVMDemoKitTestsPlaceholder: XCTestCase { func testNothing() {} }
