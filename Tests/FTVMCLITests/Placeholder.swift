import XCTest
final class FTVMCLITestsPlaceholder: XCTestCase { func testNothing() {} }
