import FTVMLog
import FTVMSystem
import FTVMWire
import Foundation

/// The relay's own cost per frame, in-process and without I/O: classification alone, and the
/// south-side wrapper (parse + log) for the frames of one bulk connection in each direction.
/// Run it from a release build (`scripts/bench-overhead.sh` does).
public enum FrameCostBenchmark {
    public struct Result: Sendable, Codable {
        public var name: String
        public var frames: Int
        public var nanosPerFrame: Double
    }

    public static func run(frames: Int = 30_000) throws -> [Result] {
        let path = "/dev/shm/ftvm-bench-frames-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try ConnectionLog.create(path: path, slots: 64, chunks: frames + 1024, chunkSize: 2048)
        let client = IPv4Address(10, 77, 0, 1)
        let server = IPv4Address(10, 77, 0, 2)
        let wrapper = SouthSide(log: log, service: server)
        let sink = DiscardingSink()
        let clientMAC = MACAddress(0x02, 0, 0, 0, 0, 1)
        let serverMAC = MACAddress(0x52, 0x54, 0, 0x77, 0, 2)
        let payload = [UInt8](repeating: 0xA5, count: 1448)
        let stamps = TCPOptions(
            maximumSegmentSize: nil, windowScale: nil, sackPermitted: false,
            timestamps: TCPTimestamps(value: 1, echoReply: 1))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate() }

        func frame(
            fromClient: Bool, seq: UInt32, ack: UInt32, flags: TCPFlags, bytes: Int
        ) throws -> UnsafeMutableRawBufferPointer {
            let spec = TCPFrameSpec(
                sourceMAC: fromClient ? clientMAC : serverMAC, destinationMAC: fromClient ? serverMAC : clientMAC,
                source: fromClient ? client : server, destination: fromClient ? server : client,
                sourcePort: fromClient ? 40000 : 80, destinationPort: fromClient ? 80 : 40000,
                sequenceNumber: SequenceNumber(seq), acknowledgmentNumber: SequenceNumber(ack), flags: flags,
                window: 65535, options: flags.contains(.syn) ? TCPOptions() : stamps)
            let length = try payload.withUnsafeBytes { bytesBuffer throws(WireError) in
                try FrameBuilder.tcp(
                    spec, payload: UnsafeRawBufferPointer(rebasing: bytesBuffer[..<bytes]), into: buffer)
            }
            return UnsafeMutableRawBufferPointer(rebasing: buffer[..<length])
        }

        let clientISN: UInt32 = 1000
        let serverISN: UInt32 = 5000
        _ = wrapper.fromClient(
            try frame(fromClient: true, seq: clientISN, ack: 0, flags: [.syn], bytes: 0), now: 0, sink: sink)
        _ = wrapper.fromGuest(
            try frame(fromClient: false, seq: serverISN, ack: clientISN + 1, flags: [.syn, .ack], bytes: 0), now: 0,
            sink: sink)

        var results: [Result] = []
        func measure(_ name: String, _ body: (Int) throws -> Void) rethrows {
            let start = Monotonic.nanos()
            for index in 0..<frames { try body(index) }
            let elapsed = Monotonic.nanos() - start
            results.append(Result(name: name, frames: frames, nanosPerFrame: Double(elapsed) / Double(frames)))
        }
        // Frames are rebuilt each time (their sequence numbers move), so measure building alone
        // too and report the wrapper's cost net of it.
        try measure("build frame (baseline)") { index in
            _ = try frame(
                fromClient: true, seq: clientISN + 1 + UInt32(index) * 1448, ack: serverISN + 1, flags: [.ack],
                bytes: 1448)
        }
        try measure("build + classify") { index in
            _ = FrameClass.classify(
                try frame(
                    fromClient: true, seq: clientISN + 1 + UInt32(index) * 1448, ack: serverISN + 1, flags: [.ack],
                    bytes: 1448))
        }
        try measure("build + log client data (1448 B)") { index in
            _ = wrapper.fromClient(
                try frame(
                    fromClient: true, seq: clientISN + 1 + UInt32(index) * 1448, ack: serverISN + 1, flags: [.ack],
                    bytes: 1448), now: 0, sink: sink)
        }
        let clientEnd = clientISN + 1 + UInt32(frames) * 1448
        try measure("build + track server data (1448 B)") { index in
            _ = wrapper.fromGuest(
                try frame(
                    fromClient: false, seq: serverISN + 1 + UInt32(index) * 1448, ack: clientEnd, flags: [.ack],
                    bytes: 1448), now: 0, sink: sink)
        }
        try measure("build + track client ACK") { index in
            _ = wrapper.fromClient(
                try frame(
                    fromClient: true, seq: clientEnd, ack: serverISN + 1 + UInt32(index) * 1448, flags: [.ack], bytes: 0
                ), now: 0, sink: sink)
        }
        return results
    }
}

/// A sink for frames nobody needs (the benchmark never replays).
final class DiscardingSink: FrameSink {
    func toGuest(_ build: (UnsafeMutableRawBufferPointer) -> Int) {}
    func toClients(_ build: (UnsafeMutableRawBufferPointer) -> Int) {}
}
