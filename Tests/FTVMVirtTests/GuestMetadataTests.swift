import FTVMVirt
import XCTest

/// The ftvm metadata record on its own, as exchanged with virDomainSetMetadata/GetMetadata.
final class GuestMetadataTests: XCTestCase {
    func testRendersUnprefixedElement() throws {
        XCTAssertEqual(
            try Fixtures.metadata.xml(),
            """
            <guest>
              <role>primary</role>
              <pair>web</pair>
              <generation>3</generation>
              <image-dir>/var/lib/ftvm/images/web-1.4.0</image-dir>
              <image-version>1.4.0</image-version>
              <link>47101</link>
              <shm-path>/dev/shm/ftvm-web-3-chan</shm-path>
            </guest>

            """)
    }

    func testRoundTrip() throws {
        for role in GuestMetadata.Role.allCases {
            var metadata = Fixtures.metadata
            metadata.role = role
            metadata.generation = 12
            XCTAssertEqual(try GuestMetadata(xml: try metadata.xml()), metadata)
        }
        var odd = Fixtures.metadata
        odd.imageVersion = "  "
        odd.imageDirectory = "/images/with space/ünïcode"
        XCTAssertEqual(try GuestMetadata(xml: try odd.xml()), odd)
    }

    /// libvirt stores the record with every element prefixed; that form parses too.
    func testParsesPrefixedForm() throws {
        let xml = """
            <ftvm:guest xmlns:ftvm="https://ftvm.dev/xmlns/guest/1">
              <ftvm:role>backup</ftvm:role><ftvm:pair>web</ftvm:pair><ftvm:generation>4</ftvm:generation>
              <ftvm:image-dir>/img</ftvm:image-dir><ftvm:image-version>2</ftvm:image-version>
              <ftvm:link>1000</ftvm:link>
              <ftvm:shm-path>/dev/shm/x</ftvm:shm-path>
            </ftvm:guest>
            """
        let metadata = try GuestMetadata(xml: xml)
        XCTAssertEqual(metadata.role, .backup)
        XCTAssertEqual(metadata.generation, 4)
        XCTAssertEqual(metadata.link, 1000)
        XCTAssertEqual(metadata.sharedMemoryPath, "/dev/shm/x")
    }

    func testDamagedRecordsAreReportedByField() {
        let cases: [(String, String)] = [
            ("<guest><role>primary</role></guest>", "lacks <pair>"),
            ("<other/>", "<guest>"),
            (try! Fixtures.metadata.xml().replacingOccurrences(of: ">primary<", with: ">leader<"), "leader"),
            (try! Fixtures.metadata.xml().replacingOccurrences(of: ">3<", with: ">three<"), "not an integer"),
            (try! Fixtures.metadata.xml().replacingOccurrences(of: ">47101<", with: ">70000<"), "not a link id"),
        ]
        for (xml, fragment) in cases {
            XCTAssertThrowsError(try GuestMetadata(xml: xml)) { error in
                guard case VirtError.malformedXML(let reason) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(reason.contains(fragment), "'\(reason)' lacks '\(fragment)'")
            }
        }
    }

    func testRejectsInvalidRecord() {
        var metadata = Fixtures.metadata
        metadata.pairName = ""
        XCTAssertThrowsError(try metadata.xml())
        metadata = Fixtures.metadata
        metadata.sharedMemoryPath = "relative"
        XCTAssertThrowsError(try metadata.xml())
    }
}
