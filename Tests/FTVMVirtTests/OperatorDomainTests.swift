import FTVMVirt
import FTVMWire
import Foundation
import XCTest

/// An operator's own domain definition as the template of a pair (`ftvm protect`): what is read,
/// what is refused, and the guest definition made from it. Pure; no libvirt needed.
final class OperatorDomainTests: XCTestCase {
    private func operatorXML() throws -> String { try DomainXMLTests.golden("operator-domain") }

    func testReadsTheNICAndTheWritableDisks() throws {
        let domain = try OperatorDomain(xml: try operatorXML())
        XCTAssertEqual(domain.name, "shop-web")
        XCTAssertEqual(domain.mac, MACAddress("52:54:00:12:34:56"))
        XCTAssertEqual(domain.uplink, .network("shopnet"))
        XCTAssertEqual(
            domain.disks, [OperatorDomain.Disk(target: "vda", path: "/srv/vm/shop-web.qcow2", format: "qcow2")],
            "the read-only cdrom needs no overlay")
        let bridged = try operatorXML().replacingOccurrences(
            of: "<interface type='network'>", with: "<interface type='bridge'>"
        ).replacingOccurrences(of: "<source network='shopnet'/>", with: "<source bridge='br0'/>")
        XCTAssertEqual(try OperatorDomain(xml: bridged).uplink, .bridge("br0"))
    }

    /// The guest definition: golden file Golden/operator-guest.xml (FTVM_UPDATE_GOLDEN=1 rewrites
    /// it and fails), and the properties that matter checked one by one so a golden update cannot hide them.
    func testGuestDefinitionKeepsTheOperatorsDevicesAndAddsFTVMs() throws {
        let domain = try OperatorDomain(xml: try operatorXML())
        let xml = try domain.guestXML(
            name: "ftvm-shop-3", virtType: .qemu, network: GuestLink(id: 47101),
            sharedMemory: SharedMemoryDevice(name: "ftvm-shop-3-chan", sizeMiB: 1),
            consoleLogPath: "/var/log/ftvm/ftvm-shop-3.console", metadata: Fixtures.metadata,
            overlays: ["vda": "/var/lib/ftvm/pairs/shop/3-vda.qcow2"])
        try DomainXMLTests.updateGoldenIfAsked("operator-guest", xml)
        XCTAssertEqual(xml, try DomainXMLTests.golden("operator-guest"))

        for kept in [
            "<memory unit=\"KiB\">1048576</memory>", "<vcpu placement=\"static\">2</vcpu>",
            "<kernel>/srv/vm/shop-web.vmlinuz</kernel>", "<title>The shop's web server</title>",
            "<source file=\"/srv/vm/seed.iso\"/>", "<on_reboot>restart</on_reboot>", "<rng model=\"virtio\">",
        ] {
            XCTAssertTrue(xml.contains(kept), "kept: \(kept)")
        }
        for changed in [
            "<domain type=\"qemu\">", "<name>ftvm-shop-3</name>", "<on_crash>preserve</on_crash>",
            "<source file=\"/var/lib/ftvm/pairs/shop/3-vda.qcow2\"/>", "<interface type=\"ethernet\">",
            "<mac address=\"52:54:00:12:34:56\"/>", "<shmem name=\"ftvm-shop-3-chan\">", "<panic model=\"isa\"/>",
            "<log file=\"/var/log/ftvm/ftvm-shop-3.console\" append=\"on\"/>",
        ] {
            XCTAssertTrue(xml.contains(changed), "ftvm's: \(changed)")
        }
        for gone in ["<uuid>", "shop-web.qcow2", "network=\"shopnet\"", "<on_crash>destroy"] {
            XCTAssertFalse(xml.contains(gone), "replaced: \(gone)")
        }
        let metadata = try XCTUnwrap(DomainXML.guestMetadata(inDomainXML: xml))
        XCTAssertEqual(metadata, Fixtures.metadata)
    }

    /// Everything that stands in the way is reported at once, and nothing else.
    func testRefusesWhatItCannotProtectWithEveryReason() throws {
        let base = try operatorXML()
        let secondNIC = "<interface type='network'><mac address='52:54:00:00:00:09'/><source network='x'/></interface>"
        let cases: [(String, String, [String])] = [
            (
                "two NICs",
                base.replacingOccurrences(of: "<serial type='pty'>", with: secondNIC + "<serial type='pty'>"),
                ["2 network interfaces"]
            ),
            (
                "user NIC",
                base.replacingOccurrences(of: "<interface type='network'>", with: "<interface type='user'>"),
                ["type 'user'"]
            ),
            (
                "block disk",
                base.replacingOccurrences(
                    of: "<disk type='file' device='disk'>", with: "<disk type='block' device='disk'>"),
                ["disk vda is type 'block'"]
            ),
            (
                "shareable and hostdev",
                base.replacingOccurrences(
                    of: "<target dev='vda' bus='virtio'/>",
                    with: "<target dev='vda' bus='virtio'/><shareable/>"
                ).replacingOccurrences(
                    of: "<rng model='virtio'>", with: "<hostdev mode='subsystem' type='usb'/><rng model='virtio'>"),
                ["<shareable/>", "<hostdev>"]
            ),
            ("writable cdrom", base.replacingOccurrences(of: "<readonly/>", with: ""), ["cdrom hdc is writable"]),
        ]
        for (what, xml, expected) in cases {
            XCTAssertThrowsError(try OperatorDomain(xml: xml), what) { error in
                guard case .cannotProtect(let domain, let reasons) = error as? VirtError else {
                    return XCTFail("\(what): \(error)")
                }
                XCTAssertEqual(domain, "shop-web")
                XCTAssertEqual(reasons.count, expected.count, "\(what): \(reasons)")
                for (reason, needle) in zip(reasons, expected) {
                    XCTAssertTrue(reason.contains(needle), "\(what): '\(reason)' should say '\(needle)'")
                }
                XCTAssertTrue("\(error)".contains("nothing was changed"))
            }
        }
    }
}
