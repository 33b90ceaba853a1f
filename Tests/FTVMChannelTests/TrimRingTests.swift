import Foundation
import XCTest

@testable import FTVMChannel

final class TrimRingTests: XCTestCase {
    private var path = ""
    private var host: Channel!
    private var guest: Channel!

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "ftvm-trim-ring-test-\(UUID().uuidString)"
        host = try Channel.open(path: path, create: true)
        guest = try Channel.open(path: path, create: false)
    }

    override func tearDown() {
        host = nil
        guest = nil
        try? FileManager.default.removeItem(atPath: path)
    }

    private func request(_ n: UInt64) -> TrimRequest {
        TrimRequest(
            clientAddress: 0x0A00_0000 | UInt32(truncatingIfNeeded: n & 0xFFFF),
            clientPort: UInt16(truncatingIfNeeded: 1024 &+ n),
            serverPort: 7000, clientOffset: n &* 3, serverOffset: n &* 1000 &+ 1)
    }

    /// The bytes of the ring after one push, field by field (everything little-endian).
    func testLayoutBytes() throws {
        let pushed = TrimRequest(
            clientAddress: 0x0A00_0107, clientPort: 0x9D78, serverPort: 0x1B58,
            clientOffset: 0x0102_0304_0506_0708, serverOffset: 0x1112_1314_1516_1718)
        XCTAssertTrue(guest.pushTrim(pushed))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(bytes[4096..<4104]), [1, 0, 0, 0, 0, 0, 0, 0])  // producer: 1 entry pushed
        XCTAssertEqual(Array(bytes[4104..<4112]), [0, 0, 0, 0, 0, 0, 0, 0])  // consumer: none consumed
        XCTAssertEqual(Array(bytes[4112..<4120]), [0, 0, 0, 0, 0, 0, 0, 0])  // dropped
        XCTAssertEqual(Array(bytes[4120..<4160]), [UInt8](repeating: 0, count: 40))  // unused up to the entries
        XCTAssertEqual(
            Array(bytes[4160..<4192]),
            [
                0x07, 0x01, 0x00, 0x0A,  // client address 10.0.1.7 (UInt32 0x0A000107)
                0x78, 0x9D,  // client port 40312
                0x58, 0x1B,  // server port 7000
                0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // client offset
                0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,  // server offset
                0, 0, 0, 0, 0, 0, 0, 0,  // reserved
            ])
        XCTAssertEqual(Array(bytes[4192..<4224]), [UInt8](repeating: 0, count: 32), "slot 1 untouched")

        XCTAssertEqual(host.popTrim(), pushed)
        bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(bytes[4104..<4112]), [1, 0, 0, 0, 0, 0, 0, 0])  // consumer: 1
        XCTAssertEqual(ChannelLayout.trimRingCapacity, 1024)
        XCTAssertEqual(
            ChannelLayout.trimEntriesOffset + ChannelLayout.trimRingCapacity * ChannelLayout.trimEntryStride, 36928)
        XCTAssertLessThanOrEqual(ChannelLayout.minimumSize, ChannelLayout.regionSize)
    }

    func testPushPopInOrder() {
        XCTAssertNil(host.popTrim())
        for n in 0..<10 { XCTAssertTrue(guest.pushTrim(request(UInt64(n)))) }
        for n in 0..<10 { XCTAssertEqual(host.popTrim(), request(UInt64(n))) }
        XCTAssertNil(host.popTrim())
        XCTAssertEqual(guest.trimsDropped, 0)
        XCTAssertEqual(host.trimResyncs, 0)
    }

    func testFullRingRefusesAndCounts() {
        let capacity = ChannelLayout.trimRingCapacity
        for n in 0..<capacity { XCTAssertTrue(guest.pushTrim(request(UInt64(n))), "entry \(n)") }
        XCTAssertFalse(guest.pushTrim(request(9999)))
        XCTAssertFalse(guest.pushTrim(request(9998)))
        XCTAssertEqual(guest.trimsDropped, 2)
        XCTAssertEqual(host.trimsDropped, 2, "the host sees the count")
        // A refused push overwrote nothing: the oldest entry is intact.
        XCTAssertEqual(host.popTrim(), request(0))
        XCTAssertTrue(guest.pushTrim(request(UInt64(capacity))), "one slot freed, one push fits")
        XCTAssertFalse(guest.pushTrim(request(9997)))
        for n in 1...capacity { XCTAssertEqual(host.popTrim(), request(UInt64(n))) }
        XCTAssertNil(host.popTrim())
        XCTAssertEqual(guest.trimsDropped, 3)
        XCTAssertEqual(host.trimResyncs, 0)
    }

    /// Batches of every size from 1 to well past the capacity, pushed and popped, so the indices
    /// run through the slots dozens of times with the ring at every fill level.
    func testWrapsAroundManyTimes() {
        var next: UInt64 = 0
        var expected: UInt64 = 0
        var batch = 1
        while next < UInt64(40 * ChannelLayout.trimRingCapacity) {
            let fits = min(batch, ChannelLayout.trimRingCapacity - Int(next - expected))
            for _ in 0..<fits {
                XCTAssertTrue(guest.pushTrim(request(next)))
                next += 1
            }
            if batch > fits { XCTAssertFalse(guest.pushTrim(request(.max))) }
            // Pop a little less than was pushed now and then, so pops lag pushes across the wrap,
            // and catch up when the ring is nearly full.
            let unread = Int(next - expected)
            let pops = unread > ChannelLayout.trimRingCapacity - 10 ? unread : max(0, fits - batch % 3)
            for _ in 0..<pops {
                XCTAssertEqual(host.popTrim(), request(expected))
                expected += 1
            }
            batch = batch * 7 % 1500 + 1
        }
        while let popped = host.popTrim() {
            XCTAssertEqual(popped, request(expected))
            expected += 1
        }
        XCTAssertEqual(expected, next)
        XCTAssertEqual(host.trimResyncs, 0)
    }

    /// Indices a buggy or hostile guest wrote: more unread entries than slots, a producer behind
    /// the consumer, and indices at the very top of the range.
    func testCorruptedProducerResyncs() throws {
        XCTAssertTrue(guest.pushTrim(request(1)))
        XCTAssertEqual(host.popTrim(), request(1))  // consumer = 1

        // Producer 1 + capacity + 1: claims one more unread entry than there are slots.
        try patchProducer(UInt64(ChannelLayout.trimRingCapacity) + 2)
        XCTAssertNil(host.popTrim())
        XCTAssertEqual(host.trimResyncs, 1)
        XCTAssertNil(host.popTrim(), "after a resync nothing is unread")
        XCTAssertEqual(host.trimResyncs, 1)
        XCTAssertTrue(guest.pushTrim(request(2)), "the ring works again from the guest's index")
        XCTAssertEqual(host.popTrim(), request(2))

        // Exactly `capacity` unread is legitimate (a full ring).
        try patchProducer(readConsumer() + UInt64(ChannelLayout.trimRingCapacity))
        var read = 0
        while host.popTrim() != nil { read += 1 }
        XCTAssertEqual(read, ChannelLayout.trimRingCapacity)
        XCTAssertEqual(host.trimResyncs, 1)

        // Producer behind the consumer: `producer - consumer` wraps to nearly 2^64.
        try patchProducer(readConsumer() - 5)
        XCTAssertNil(host.popTrim())
        XCTAssertEqual(host.trimResyncs, 2)
        XCTAssertEqual(try readConsumer(), try readProducer())

        // Indices near UInt64.max: slots are still in range, and the index wraps to 0.
        try patch(offset: 4104, value: .max - 1)
        try patchProducer(.max - 1)
        XCTAssertTrue(guest.pushTrim(request(3)))
        XCTAssertTrue(guest.pushTrim(request(4)))
        XCTAssertEqual(try readProducer(), 0)
        XCTAssertEqual(host.popTrim(), request(3))
        XCTAssertEqual(host.popTrim(), request(4))
        XCTAssertNil(host.popTrim())
        XCTAssertEqual(host.trimResyncs, 2)
    }

    /// Garbage in the entries themselves is returned as garbage, not trusted or trapped on.
    func testGarbageEntriesAreReadNotTrusted() throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 4160)
        try handle.write(contentsOf: Data(repeating: 0xFF, count: ChannelLayout.trimRingCapacity * 32))
        try handle.close()
        try patchProducer(3)
        for _ in 0..<3 {
            XCTAssertEqual(
                host.popTrim(),
                TrimRequest(
                    clientAddress: .max, clientPort: .max, serverPort: .max, clientOffset: .max, serverOffset: .max))
        }
        XCTAssertNil(host.popTrim())
    }

    /// One producer thread and one consumer thread on two mappings of the region: every entry
    /// arrives once, in order, intact.
    func testConcurrentProducerAndConsumer() throws {
        let total: UInt64 = 200_000
        let guest = self.guest!
        let producer = Thread {
            var n: UInt64 = 0
            while n < total {
                if guest.pushTrim(
                    TrimRequest(
                        clientAddress: UInt32(truncatingIfNeeded: n), clientPort: 1, serverPort: 2, clientOffset: n,
                        serverOffset: ~n))
                {
                    n += 1
                }
            }
        }
        producer.start()
        var expected: UInt64 = 0
        var mismatches = 0
        let deadline = Date().addingTimeInterval(60)
        while expected < total, Date() < deadline {
            guard let popped = host.popTrim() else { continue }
            if popped
                != TrimRequest(
                    clientAddress: UInt32(truncatingIfNeeded: expected), clientPort: 1, serverPort: 2,
                    clientOffset: expected, serverOffset: ~expected)
            {
                mismatches += 1
            }
            expected += 1
        }
        XCTAssertEqual(expected, total)
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(host.trimResyncs, 0)
    }

    // MARK: Helpers

    private func patchProducer(_ value: UInt64) throws { try patch(offset: 4096, value: value) }

    private func readProducer() throws -> UInt64 { try read(offset: 4096) }

    private func readConsumer() throws -> UInt64 { try read(offset: 4104) }

    private func patch(offset: UInt64, value: UInt64) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: withUnsafeBytes(of: value.littleEndian) { Data($0) })
        try handle.close()
    }

    private func read(offset: UInt64) throws -> UInt64 {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        let data = try XCTUnwrap(try handle.read(upToCount: 8))
        return data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
    }
}
