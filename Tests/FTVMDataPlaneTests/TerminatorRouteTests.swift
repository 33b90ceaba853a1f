import FTVMDataPlane
import FTVMWire
import XCTest

/// Which frames the relay gives the host's TLS terminator: the clients' segments to a public TLS
/// port of the service go to its front (and only there), ARP to the front and the guest; the
/// guest's frames to the back's MAC go to the back, broadcasts to both sides.
final class TerminatorRouteTests: XCTestCase {
    let service = IPv4Address(10, 77, 0, 2)
    let client = IPv4Address(10, 77, 0, 1)
    let serviceMAC = MACAddress(0x52, 0x54, 0, 0x77, 0, 2)
    let clientMAC = MACAddress(0x02, 0, 0, 0, 0, 1)
    let backMAC = MACAddress(0x56, 0x54, 0, 0x77, 0, 2)
    lazy var route = TerminatorRoute(service: service, publicPorts: [443, 8443], backMAC: backMAC)

    /// The route of a TCP segment from the client to `destination`:`port`.
    private func fromClients(to destination: IPv4Address, port: UInt16) throws -> TerminatorRoute.FromClients {
        let spec = TCPFrameSpec(
            sourceMAC: clientMAC, destinationMAC: serviceMAC, source: client, destination: destination,
            sourcePort: 40000, destinationPort: port, sequenceNumber: SequenceNumber(1),
            acknowledgmentNumber: SequenceNumber(0), flags: .syn, window: 65535)
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { frame.deallocate() }
        let length = try FrameBuilder.tcp(spec, into: frame)
        return route.route(fromClients: UnsafeMutableRawBufferPointer(rebasing: frame[..<length]))
    }

    /// The route of a guest's frame to `destination` (an ARP frame: only its Ethernet header counts).
    private func fromGuest(to destination: MACAddress) throws -> TerminatorRoute.FromGuest {
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { frame.deallocate() }
        let length = try FrameBuilder.arp(
            operation: .request, senderMAC: serviceMAC, senderIP: service, targetMAC: .zero,
            targetIP: IPv4Address(10, 77, 0, 254), ethernetDestination: destination, into: frame)
        return route.route(fromGuest: UnsafeMutableRawBufferPointer(rebasing: frame[..<length]))
    }

    func testTheClientsTLSSegmentsGoToTheFrontOnly() throws {
        XCTAssertEqual(try fromClients(to: service, port: 443), .front)
        XCTAssertEqual(try fromClients(to: service, port: 8443), .front)
    }

    func testOtherPortsAndAddressesGoToTheGuest() throws {
        XCTAssertEqual(try fromClients(to: service, port: 80), .guest)
        XCTAssertEqual(try fromClients(to: service, port: 444), .guest)
        // Port 443 of another address (a relay server's back end, say) is not the terminator's.
        XCTAssertEqual(try fromClients(to: IPv4Address(10, 77, 0, 9), port: 443), .guest)
    }

    func testARPFromTheClientsReachesBothStacks() throws {
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { frame.deallocate() }
        let length = try FrameBuilder.arp(
            operation: .reply, senderMAC: clientMAC, senderIP: client, targetMAC: serviceMAC, targetIP: service,
            ethernetDestination: serviceMAC, into: frame)
        XCTAssertEqual(route.route(fromClients: UnsafeMutableRawBufferPointer(rebasing: frame[..<length])), .both)
    }

    func testTheGuestsFramesGoByDestinationMAC() throws {
        XCTAssertEqual(try fromGuest(to: backMAC), .back)
        XCTAssertEqual(try fromGuest(to: clientMAC), .clients)
        XCTAssertEqual(try fromGuest(to: .broadcast), .both)
    }

    func testAFrameTooShortForEthernetGoesToTheClients() {
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { frame.deallocate() }
        frame.initializeMemory(as: UInt8.self, repeating: 0)
        XCTAssertEqual(route.route(fromGuest: frame), .clients)
        XCTAssertEqual(route.route(fromClients: frame), .guest)
    }
}
