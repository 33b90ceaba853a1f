import FTVMSystem
import FTVMWire
import Foundation
import XCTest

/// The relay's links on a real tap: a super-frame with a partial checksum written on one side
/// (as QEMU or the clients' kernel hands it over) comes out of the other whole, its virtio-net
/// header describing it; both ways. Needs root (a tap in the host's namespace, with no address,
/// named ftvt<random> and gone with its fd).
final class LinkTests: XCTestCase {
    private let client = IPv4Address(10, 79, 0, 1)
    private let server = IPv4Address(10, 79, 0, 2)

    /// A 20000-byte TCP super-frame with its header: NEEDS_CSUM (the field holds the pseudo-header
    /// sum), TSO for IPv4 at 1448-byte segments.
    private func superFrame() throws -> (header: VirtioNetHeader, frame: [UInt8]) {
        let payload = (0..<20000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 7) }
        let spec = TCPFrameSpec(
            sourceMAC: MACAddress(0x52, 0x54, 0, 0x79, 0, 2), destinationMAC: MACAddress(2, 0, 0, 0x79, 0, 1),
            source: server, destination: client, sourcePort: 80, destinationPort: 40000,
            sequenceNumber: SequenceNumber(1000), acknowledgmentNumber: SequenceNumber(2000), flags: [.ack, .psh],
            window: 500, options: TCPOptions())
        var frame = [UInt8](repeating: 0, count: 14 + 20 + 20 + payload.count)
        let length = try frame.withUnsafeMutableBytes { buffer in
            try payload.withUnsafeBytes { bytes throws(WireError) in
                try FrameBuilder.tcp(spec, payload: bytes, into: buffer)
            }
        }
        XCTAssertEqual(length, frame.count)
        let seed = InternetChecksum.tcpPseudoHeaderSum(
            source: server, destination: client, tcpLength: 20 + payload.count)
        frame[50] = UInt8(seed >> 8)
        frame[51] = UInt8(seed & 0xFF)
        let header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksumFlag, gsoType: VirtioNetHeader.SegmentationType.tcpIPv4.rawValue,
            headerLength: 54, segmentSize: 1448, checksumStart: 34, checksumOffset: 16)
        return (header, frame)
    }

    private func assertCarries(
        _ slot: UnsafeRawBufferPointer, _ header: VirtioNetHeader, _ frame: [UInt8], _ way: String
    ) {
        guard let got = VirtioNetHeader(slot) else { return XCTFail("\(way): no header") }
        XCTAssertEqual(Array(slot[VirtioNetHeader.size...]), frame, "\(way): the frame, whole")
        XCTAssertTrue(got.needsChecksum, way)
        XCTAssertEqual(got.segmentation, .tcpIPv4, way)
        XCTAssertEqual(got.segmentSize, header.segmentSize, way)
        XCTAssertEqual(got.checksumStart, header.checksumStart, way)
        XCTAssertEqual(got.checksumOffset, header.checksumOffset, way)
    }

    func testSuperFramesWithPartialChecksumsCrossWholeBothWays() throws {
        try XCTSkipUnless(getuid() == 0, "needs root for a tap")
        let name = "ftvt" + String(UInt16.random(in: 1000...9999))
        let tap = try TapDevice(name: name, namespacePath: nil, offload: true)
        for (file, value) in [("ipv6/conf/\(name)/disable_ipv6", "1"), ("ipv4/conf/\(name)/forwarding", "0")] {
            try? Data(value.utf8).write(to: URL(fileURLWithPath: "/proc/sys/net/" + file))
        }
        let up = Process()
        up.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        up.arguments = ["link", "set", "dev", name, "mtu", "1500", "up"]
        try up.run()
        up.waitUntilExit()
        XCTAssertEqual(up.terminationStatus, 0)
        let socket = try PacketSocket(interface: name)
        let (header, frame) = try superFrame()
        var slot = [UInt8](repeating: 0, count: VirtioNetHeader.size + frame.count)
        slot.withUnsafeMutableBytes { header.write(to: $0) }
        slot[VirtioNetHeader.size...] = frame[...]

        // The tap's fd side (QEMU's) to the AF_PACKET side (the relay's).
        try slot.withUnsafeBytes { try tap.write($0) }
        let batch = FrameBatch(capacity: 4)
        var received = 0
        for _ in 0..<100 where received == 0 {
            received = try socket.receive(into: batch)
            if received == 0 { usleep(10_000) }
        }
        XCTAssertEqual(received, 1)
        if received == 1 { assertCarries(UnsafeRawBufferPointer(batch.frame(0)), header, frame, "tap → socket") }

        // The relay's side back to the fd: the tap takes TSO (TUNSETOFFLOAD), so nothing is cut.
        batch.reset()
        batch.nextSlot.copyBytes(from: slot)
        batch.commitSlot(length: slot.count)
        try socket.send(batch)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameBatch.slotSize, alignment: 16)
        defer { buffer.deallocate() }
        var read: Int?
        for _ in 0..<100 {
            read = try tap.read(into: buffer)
            // (The kernel may have sent something of its own first; only TCP is ours.)
            if let count = read, count > VirtioNetHeader.size + 23, buffer[VirtioNetHeader.size + 23] == 6 { break }
            read = nil
            usleep(10_000)
        }
        let count = try XCTUnwrap(read, "socket → tap: nothing read")
        assertCarries(UnsafeRawBufferPointer(rebasing: buffer[..<count]), header, frame, "socket → tap")
    }
}
