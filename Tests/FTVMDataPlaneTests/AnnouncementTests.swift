import FTVMLog
import FTVMSystem
import FTVMWire
import Foundation
import Logging
import XCTest

@testable import FTVMDataPlane

/// At a takeover the relay announces the service itself (`Relay.beginReplay`): a gratuitous ARP
/// for the service's address at its MAC reaches the clients' side without the resumed guest
/// sending anything. Needs root (a tap in the host's namespace, with no address, named
/// ftva<random> and gone with its fd).
final class AnnouncementTests: XCTestCase {
    func testBeginReplayAnnouncesTheServiceToTheClients() throws {
        try XCTSkipUnless(getuid() == 0, "needs root for a tap")
        let name = "ftva" + String(UInt16.random(in: 1000...9999))
        let tap = try TapDevice(name: name, namespacePath: nil, offload: true)
        try? Data("1".utf8).write(to: URL(fileURLWithPath: "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6"))
        let up = Process()
        up.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        up.arguments = ["link", "set", "dev", name, "up"]
        try up.run()
        up.waitUntilExit()
        XCTAssertEqual(up.terminationStatus, 0)
        let clients = try PacketSocket(interface: name)

        let path = "/dev/shm/ftvm-\(Self.self)-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try ConnectionLog.create(path: path, slots: 8, chunks: 64, chunkSize: 2048)
        let service = IPv4Address(10, 78, 0, 2)
        let mac = MACAddress(0x52, 0x54, 0, 0x78, 0, 2)
        let relay = try Relay(
            tap: tap, southSide: SouthSide(log: log, service: service, serviceMAC: mac),
            logger: Logger(label: "test"))
        relay.start()
        defer { relay.stop() }
        XCTAssertNil(relay.announcedAt)

        // At once: a replay asked for before the loop thread got going is not lost either.
        relay.connect(guestPort: nil)
        relay.beginReplay()
        let batch = FrameBatch(capacity: 8)
        var announcement: [UInt8]?
        for _ in 0..<200 where announcement == nil {
            batch.reset()
            for index in 0..<(try clients.receive(into: batch)) {
                let frame = Array(UnsafeRawBufferPointer(batch.frame(index))[VirtioNetHeader.size...])
                // (The kernel may send something of its own on a fresh link; only ARP is ours.)
                if frame.count >= 14, frame[12] == 0x08, frame[13] == 0x06 { announcement = frame }
            }
            if announcement == nil { usleep(10_000) }
        }
        var frame = try XCTUnwrap(announcement, "no ARP reached the clients' side")
        frame.withUnsafeMutableBytes { bytes in
            guard let arp = ARPView(frame: bytes) else { return XCTFail("not an ARP for IPv4 over Ethernet") }
            XCTAssertTrue(arp.isGratuitous)
            XCTAssertEqual(arp.operation, .request)
            XCTAssertEqual(arp.senderMAC, mac)
            XCTAssertEqual(arp.senderIP, service)
            XCTAssertEqual(EthernetView(frame: bytes)?.destination, .broadcast)
        }
        XCTAssertNotNil(relay.announcedAt)
    }
}
