import XCTest

@testable import FTVMController

final class HTTPDateMaskTests: XCTestCase {
    private func mask(_ text: String) -> String {
        let bytes = Array(text.utf8)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { scratch.deallocate() }
        return bytes.withUnsafeBytes { String(decoding: HTTPDateMask.masked($0, scratch: scratch), as: UTF8.self) }
    }

    func testTwoHeadsThatDifferOnlyInTheirDateMaskAlike() {
        let first = "HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 15:44:25 GMT\r\nContent-Length: 3\r\n\r\nabc"
        let second = "HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 15:44:27 GMT\r\nContent-Length: 3\r\n\r\nabc"
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(mask(first), mask(second))
        XCTAssertEqual(mask(first), "HTTP/1.1 200 OK\r\nDate: -----------------------------\r\nContent-Length: 3\r\n\r\nabc")
    }

    func testHeaderNamesAreCaseInsensitive() {
        XCTAssertEqual(mask("HTTP/1.0 200 OK\r\nDATE:x1\r\n\r\n"), "HTTP/1.0 200 OK\r\nDATE:--\r\n\r\n")
    }

    func testADateOfAnotherLengthStillDiffers() {
        XCTAssertNotEqual(mask("HTTP/1.1 200 OK\r\nDate: 1\r\n\r\n"), mask("HTTP/1.1 200 OK\r\nDate: 12\r\n\r\n"))
    }

    func testOnlyAHeadAtTheSegmentStartAndOnlyItsHeadersAreMasked() {
        let body = "HTTP/1.1 200 OK\r\nX: y\r\n\r\n\r\nDate: in the body"
        XCTAssertEqual(mask(body), body)
        let notAHead = "xxHTTP/1.1 200 OK\r\nDate: now\r\n\r\n"
        XCTAssertEqual(mask(notAHead), notAHead)
        XCTAssertEqual(mask("HTTP/1.1 200 OK\r\nX-Date: now\r\n\r\n"), "HTTP/1.1 200 OK\r\nX-Date: now\r\n\r\n")
    }
}
