import XCTest
final class FTVMChannelTestsPlaceholder: XCTestCase { func testNothing() {} }
