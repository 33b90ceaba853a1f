import FTVMVirt
import FTVMWire
import Foundation
import XCTest

/// Pure tests of domain XML rendering and parsing; no libvirt needed.
final class DomainXMLTests: XCTestCase {
    /// Rendering a fixed spec gives exactly Golden/primary.xml. To accept an intended change, run
    /// once with FTVM_UPDATE_GOLDEN=1 (which rewrites the file and fails), review the diff, run again.
    func testRenderMatchesGoldenFile() throws {
        let rendered = try DomainXML.render(Fixtures.primarySpec())
        try Self.updateGoldenIfAsked("primary", rendered)
        let golden = try Self.golden("primary")
        XCTAssertEqual(rendered, golden, "rendered XML differs from Golden/primary.xml")
    }

    func testRenderIsDeterministic() throws {
        XCTAssertEqual(try DomainXML.render(Fixtures.primarySpec()), try DomainXML.render(Fixtures.primarySpec()))
    }

    func testRoundTrip() throws {
        for virtType in Accelerator.allCases {
            let spec = Fixtures.primarySpec(virtType: virtType)
            XCTAssertEqual(try DomainXML.parse(try DomainXML.render(spec)), spec)
        }
    }

    func testRoundTripWithoutUUIDOrInitrdOrKernel() throws {
        var spec = Fixtures.primarySpec()
        spec.uuid = nil
        spec.boot?.initrdPath = nil
        XCTAssertEqual(try DomainXML.parse(try DomainXML.render(spec)), spec)
        spec.boot = nil
        let xml = try DomainXML.render(spec)
        XCTAssertTrue(xml.contains("<bios rebootTimeout=\"-1\"/>"), xml)
        XCTAssertEqual(try DomainXML.parse(xml), spec)
    }

    /// What libvirt 9.0 returns from `virsh dumpxml` for Golden/primary.xml (memory in KiB,
    /// defaults and PCI addresses added, metadata children prefixed) parses to the same spec.
    func testParsesLibvirtsOwnRendering() throws {
        let spec = try DomainXML.parse(try Self.golden("libvirt-dumpxml"))
        XCTAssertEqual(spec, Fixtures.primarySpec())
        XCTAssertEqual(try DomainXML.guestMetadata(inDomainXML: try Self.golden("libvirt-dumpxml")), Fixtures.metadata)
    }

    func testEscapesSpecialCharacters() throws {
        var spec = Fixtures.primarySpec()
        spec.metadata.imageVersion = "1.4.0 <rc&'\">"
        spec.boot?.commandLine = "console=ttyS0 ftvm.note=a&&b"
        let xml = try DomainXML.render(spec)
        XCTAssertTrue(xml.contains("1.4.0 &lt;rc&amp;'\"&gt;"), xml)
        XCTAssertTrue(xml.contains("ftvm.note=a&amp;&amp;b"), xml)
        XCTAssertEqual(try DomainXML.parse(xml), spec)
    }

    func testMetadataOfForeignDomainIsNil() throws {
        let xml = "<domain type='qemu'><name>other</name><metadata><x:y xmlns:x='urn:x'/></metadata></domain>"
        XCTAssertNil(try DomainXML.guestMetadata(inDomainXML: xml))
        XCTAssertThrowsError(try DomainXML.parse(xml)) { error in
            XCTAssertTrue("\(error)".contains("no ftvm metadata"), "\(error)")
        }
    }

    func testMalformedXMLIsReported() {
        XCTAssertThrowsError(try DomainXML.parse("<domain type='qemu'><name>x</domain>")) { error in
            guard case VirtError.malformedXML(let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("not well-formed"), reason)
        }
        XCTAssertThrowsError(try DomainXML.parse("<network/>"))
    }

    func testRejectsInvalidSpecs() {
        func expectInvalid(_ change: (inout DomainSpec) -> Void, _ fragment: String, line: UInt = #line) {
            var spec = Fixtures.primarySpec()
            change(&spec)
            XCTAssertThrowsError(try DomainXML.render(spec), line: line) { error in
                guard case VirtError.invalidSpec(let reason) = error else {
                    return XCTFail("expected invalidSpec, got \(error)", line: line)
                }
                XCTAssertTrue(reason.contains(fragment), "'\(reason)' lacks '\(fragment)'", line: line)
            }
        }
        expectInvalid({ $0.name = "bad/name" }, "domain name")
        expectInvalid({ $0.name = "" }, "domain name")
        expectInvalid({ $0.uuid = "not-a-uuid" }, "uuid")
        expectInvalid({ $0.memoryMiB = 0 }, "memory")
        expectInvalid({ $0.vcpus = 0 }, "vcpus")
        expectInvalid({ $0.sharedMemory.sizeMiB = 3 }, "power of two")
        expectInvalid({ $0.network.id = 0 }, "link id")
        expectInvalid({ $0.metadata.link = 1 }, "differs from the interface")
        expectInvalid({ $0.metadata.sharedMemoryPath = "/dev/shm/other" }, "differs")
        expectInvalid({ $0.consoleLogPath = "relative.log" }, "absolute")
        expectInvalid({ $0.boot?.kernelPath = "vmlinuz" }, "absolute")
        expectInvalid({ $0.mac = MACAddress("01:00:5e:00:00:01")! }, "multicast")
        expectInvalid({ $0.boot?.commandLine = "console=ttyS0\u{1}" }, "U+1")
    }

    func testMACAddressParsing() {
        XCTAssertEqual(MACAddress("52:54:00:AB:cd:0e")?.description, "52:54:00:ab:cd:0e")
        XCTAssertEqual(MACAddress("52-54-00-ab-cd-0e"), MACAddress(0x52, 0x54, 0, 0xab, 0xcd, 0x0e))
        XCTAssertNil(MACAddress("52:54:00:ab:cd"))
        XCTAssertNil(MACAddress("52:54:00:ab:cd:0e:ff"))
        XCTAssertNil(MACAddress("52:54:00:ab:cd:zz"))
        XCTAssertNil(MACAddress("5:54:00:ab:cd:0e"))
    }

    /// A golden file, from the copy Package.swift puts in the test bundle: one missing there is a
    /// broken build of the tests, a failure.
    static func golden(_ name: String) throws -> String {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: name, withExtension: "xml", subdirectory: "Golden"),
            "Golden/\(name).xml missing from the test bundle")
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// Under FTVM_UPDATE_GOLDEN=1, writes `text` as Golden/NAME.xml in the source tree and fails:
    /// a run that rewrote a golden file checked nothing against it. Review the diff, run again.
    static func updateGoldenIfAsked(
        _ name: String, _ text: String, file: StaticString = #filePath, line: UInt = #line
    )
        throws
    {
        guard ProcessInfo.processInfo.environment["FTVM_UPDATE_GOLDEN"] == "1" else { return }
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Golden/\(name).xml")
        try text.write(to: path, atomically: true, encoding: .utf8)
        XCTFail(
            "FTVM_UPDATE_GOLDEN=1: rewrote \(path.path); review the diff and run again without it", file: file,
            line: line)
    }
}
