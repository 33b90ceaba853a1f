import XCTest
final class FTVMVirtTestsPlaceholder: XCTestCase { func testNothing() {} }
