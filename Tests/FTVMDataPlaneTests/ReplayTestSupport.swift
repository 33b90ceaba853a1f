import FTVMLog
import FTVMWire
import Foundation
import XCTest

@testable import FTVMDataPlane

/// A south-side wrapper on a small log of its own in /dev/shm, for tests that play frames by
/// hand, with a sink that records what the wrapper sends; the log is removed after each test.
class HandPlayedTestCase: XCTestCase {
    var path = ""
    var log: ConnectionLog!
    var wrapper: SouthSide!
    var sink: RecordingSink!
    /// Room for any frame a test builds, super-frames included.
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 16)
    /// The log's chunk size (a small one makes trimming visible).
    class var chunkSize: Int { 2048 }
    /// The log's connection slots.
    class var slots: Int { 8 }

    override func setUpWithError() throws {
        path = "/dev/shm/ftvm-\(Self.self)-\(UUID().uuidString)"
        log = try ConnectionLog.create(path: path, slots: Self.slots, chunks: 64, chunkSize: Self.chunkSize)
        makeWrapper()
        sink = RecordingSink()
    }

    /// The wrapper every test starts with: the service at 10.77.0.2, the default policy.
    func makeWrapper() { wrapper = SouthSide(log: log, service: IPv4Address(10, 77, 0, 2)) }

    override func tearDown() {
        wrapper = nil
        log = nil
        sink = nil
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { buffer.deallocate() }
}

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
