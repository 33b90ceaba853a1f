import FTVMWire
import XCTest

@testable import FTVMAgentKit

final class GratuitousARPTests: XCTestCase {
    /// The frame byte by byte, for 52:54:00:12:34:56 announcing 10.77.0.2.
    func testGoldenFrame() {
        let frame = GratuitousARP.frame(mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], address: [10, 77, 0, 2])
        let expected: [UInt8] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // Ethernet destination: broadcast
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,  // Ethernet source
            0x08, 0x06,  // EtherType: ARP
            0x00, 0x01,  // hardware type: Ethernet
            0x08, 0x00,  // protocol type: IPv4
            0x06, 0x04,  // hardware and protocol address lengths
            0x00, 0x01,  // operation: request
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,  // sender MAC
            10, 77, 0, 2,  // sender IP
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // target MAC: unknown
            10, 77, 0, 2,  // target IP: the sender's own
        ]
        XCTAssertEqual(frame, expected)
        XCTAssertEqual(frame.count, GratuitousARP.frameLength)
    }

    /// The relay's own ARP parser (FTVMWire) reads it as a gratuitous request from that MAC and IP.
    func testTheRelaysParserAgrees() throws {
        var frame = GratuitousARP.frame(mac: [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef], address: [192, 168, 1, 20])
        try frame.withUnsafeMutableBytes { bytes in
            let view = try XCTUnwrap(ARPView(frame: bytes))
            XCTAssertEqual(view.operation, .request)
            XCTAssertTrue(view.isGratuitous)
            XCTAssertEqual(view.senderMAC.rawValue, 0x5254_00ab_cdef)
            XCTAssertEqual(view.senderIP.rawValue, 0xC0A8_0114)
        }
    }

    func testParseMAC() {
        XCTAssertEqual(GratuitousARP.parseMAC("52:54:00:0a:BC:ff"), [0x52, 0x54, 0x00, 0x0a, 0xbc, 0xff])
        XCTAssertNil(GratuitousARP.parseMAC("52:54:00:0a:bc"))
        XCTAssertNil(GratuitousARP.parseMAC("52:54:00:0a:bc:fff"))
        XCTAssertNil(GratuitousARP.parseMAC("52:54:00:0a:bc:zz"))
    }
}
