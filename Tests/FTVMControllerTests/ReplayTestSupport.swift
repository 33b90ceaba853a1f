import FTVMWire
import XCTest

@testable import FTVMController

/// A frame sink that keeps every frame, in order, for the test to parse.
final class RecordingSink: FrameSink {
    private(set) var guest: [[UInt8]] = []
    private(set) var clients: [[UInt8]] = []
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 16)

    deinit { scratch.deallocate() }

    func toGuest(_ build: (UnsafeMutableRawBufferPointer) -> Int) {
        let length = build(scratch)
        if length > 0 { guest.append(Array(scratch[..<length])) }
    }

    func toClients(_ build: (UnsafeMutableRawBufferPointer) -> Int) {
        let length = build(scratch)
        if length > 0 { clients.append(Array(scratch[..<length])) }
    }

    /// The guest-bound frames so far, parsed; forgets them.
    func takeGuest() throws -> [SentSegment] {
        defer { guest.removeAll() }
        return try guest.map(SentSegment.init)
    }

    /// The client-bound frames so far, parsed; forgets them.
    func takeClients() throws -> [SentSegment] {
        defer { clients.removeAll() }
        return try clients.map(SentSegment.init)
    }

    /// Forgets everything recorded.
    @discardableResult
    func takeAll() -> Int {
        defer {
            guest.removeAll()
            clients.removeAll()
        }
        return guest.count + clients.count
    }
}

/// One recorded frame, parsed into what the tests compare.
struct SentSegment {
    var sourceMAC: MACAddress
    var destinationMAC: MACAddress
    var tuple: FourTuple
    var seq: UInt32
    var ack: UInt32
    var flags: TCPFlags
    var window: UInt16
    var options: TCPOptions
    var payload: [UInt8]
    var checksumValid: Bool

    init(_ frame: [UInt8]) throws {
        var bytes = frame
        let parsed: SentSegment? = bytes.withUnsafeMutableBytes { raw in
            guard case .ipv4TCP(let segment) = FrameClass.classify(raw) else { return nil }
            return SentSegment(segment)
        }
        self = try XCTUnwrap(parsed, "not a well-formed TCP frame")
    }

    private init(_ segment: TCPSegmentView) {
        sourceMAC = segment.ethernet.source
        destinationMAC = segment.ethernet.destination
        tuple = segment.fourTuple
        seq = segment.sequenceNumber.rawValue
        ack = segment.acknowledgmentNumber.rawValue
        flags = segment.flags
        window = segment.window
        options = segment.options
        payload = Array(segment.payload)
        checksumValid = segment.isChecksumValid
    }
}
