import FTVMDataPlane
import FTVMLog
import FTVMSystem
import FTVMWire
import Foundation

/// The relay's own cost per frame, in-process and without I/O: classification alone, the
/// south-side wrapper (parse + log + HTTP framing) for the frames of one bulk HTTP connection in
/// each direction (an upload's body, a download's body), and whole keep-alive exchanges (request,
/// a response with a `Date:` header in one segment, the client's ACK: framed, masked, trimmed).
/// Run it from a release build (`ftvm bench frames`).
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

        /// A segment whose payload is `bytes` (a head, a whole small exchange), not the filler.
        func frame(
            fromClient: Bool, port: UInt16, seq: UInt32, ack: UInt32, carrying bytes: [UInt8], flags: TCPFlags? = nil
        ) throws -> UnsafeMutableRawBufferPointer {
            let spec = TCPFrameSpec(
                sourceMAC: fromClient ? clientMAC : serverMAC, destinationMAC: fromClient ? serverMAC : clientMAC,
                source: fromClient ? client : server, destination: fromClient ? server : client,
                sourcePort: fromClient ? port : 80, destinationPort: fromClient ? 80 : port,
                sequenceNumber: SequenceNumber(seq), acknowledgmentNumber: SequenceNumber(ack),
                flags: flags ?? (bytes.isEmpty ? [.ack] : [.ack, .psh]), window: 65535,
                options: flags?.contains(.syn) == true ? TCPOptions() : stamps)
            let length = try bytes.withUnsafeBytes { payload throws(WireError) in
                try FrameBuilder.tcp(spec, payload: payload, into: buffer)
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
        // The heads of one upload and its (long) answer: the frames measured below are bodies.
        let body = UInt64(frames) * 1448
        let uploadHead = Array("POST /sha256 HTTP/1.1\r\nHost: b\r\nContent-Length: \(body)\r\n\r\n".utf8)
        let answerHead = Array(
            "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 08:58:11 GMT\r\nContent-Length: \(body)\r\n\r\n".utf8)
        _ = wrapper.fromClient(
            try frame(fromClient: true, port: 40000, seq: clientISN + 1, ack: serverISN + 1, carrying: uploadHead),
            now: 0, sink: sink)
        _ = wrapper.fromGuest(
            try frame(
                fromClient: false, port: 40000, seq: serverISN + 1, ack: clientISN + 1 + UInt32(uploadHead.count),
                carrying: answerHead), now: 0, sink: sink)
        let clientBody = clientISN + 1 + UInt32(uploadHead.count)
        let serverBody = serverISN + 1 + UInt32(answerHead.count)

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
        try measure("build + log client data (HTTP body, 1448 B)") { index in
            _ = wrapper.fromClient(
                try frame(
                    fromClient: true, seq: clientBody + UInt32(index) * 1448, ack: serverBody, flags: [.ack],
                    bytes: 1448), now: 0, sink: sink)
        }
        let clientEnd = clientBody + UInt32(frames) * 1448
        try measure("build + track server data (HTTP body, 1448 B)") { index in
            _ = wrapper.fromGuest(
                try frame(
                    fromClient: false, seq: serverBody + UInt32(index) * 1448, ack: clientEnd, flags: [.ack],
                    bytes: 1448), now: 0, sink: sink)
        }
        try measure("build + track client ACK") { index in
            _ = wrapper.fromClient(
                try frame(
                    fromClient: true, seq: clientEnd, ack: serverBody + UInt32(index) * 1448, flags: [.ack], bytes: 0
                ), now: 0, sink: sink)
        }

        // Keep-alive exchanges on a second connection: a 40-byte request, a 1448-byte answer
        // (head with Date:, then body) in one segment, the client's ACK; each exchange is framed,
        // masked and trimmed. Reported per frame (three frames an exchange).
        let request = Array("GET /bytes/1350 HTTP/1.1\r\nHost: b\r\n\r\n".utf8)
        let head = Array("HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 08:58:11 GMT\r\nContent-Length: ".utf8)
        let answer = head + Array("\(1448 - head.count - 8)\r\n\r\n".utf8)
        let response = answer + [UInt8](repeating: 0x5A, count: 1448 - answer.count)
        _ = wrapper.fromClient(
            try frame(fromClient: true, port: 40001, seq: clientISN, ack: 0, carrying: [], flags: [.syn]), now: 0,
            sink: sink)
        _ = wrapper.fromGuest(
            try frame(
                fromClient: false, port: 40001, seq: serverISN, ack: clientISN + 1, carrying: [], flags: [.syn, .ack]),
            now: 0, sink: sink)
        let exchanges = frames / 3
        let start = Monotonic.nanos()
        for index in 0..<exchanges {
            let requestSeq = clientISN + 1 + UInt32(index * request.count)
            let responseSeq = serverISN + 1 + UInt32(index * response.count)
            let requestEnd = requestSeq + UInt32(request.count)
            _ = wrapper.fromClient(
                try frame(fromClient: true, port: 40001, seq: requestSeq, ack: responseSeq, carrying: request), now: 0,
                sink: sink)
            _ = wrapper.fromGuest(
                try frame(fromClient: false, port: 40001, seq: responseSeq, ack: requestEnd, carrying: response),
                now: 0, sink: sink)
            _ = wrapper.fromClient(
                try frame(
                    fromClient: true, port: 40001, seq: requestEnd, ack: responseSeq + UInt32(response.count),
                    carrying: []), now: 0, sink: sink)
        }
        let elapsed = Monotonic.nanos() - start
        results.append(
            Result(
                name: "build + keep-alive exchange (request, 1448-B answer, ACK), per frame", frames: exchanges * 3,
                nanosPerFrame: Double(elapsed) / Double(exchanges * 3)))
        return results
    }

    /// One CRC32C implementation's speed over buffers of one size.
    public struct ChecksumResult: Sendable {
        public var implementation: CRC32C.Implementation
        public var bytes: Int
        public var nanosPerBuffer: Double
        /// The running checksum after the last buffer: equal across implementations, or one is wrong.
        public var checksum: UInt32

        public var gigabytesPerSecond: Double { Double(bytes) / nanosPerBuffer }
    }

    /// Each CRC32C implementation this CPU can run, over a 1448-byte segment (the server data
    /// row's) and a 64 KiB super-segment: about `frames` × 1448 bytes each, as one running
    /// checksum (each buffer continues the last, as the server stream's does).
    public static func checksums(frames: Int = 30_000) -> [ChecksumResult] {
        let data = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 8) }  // the same every run
        var results: [ChecksumResult] = []
        data.withUnsafeBytes { all in
            for bytes in [1448, 65536] {
                let buffer = UnsafeRawBufferPointer(rebasing: all[..<bytes])
                let iterations = max(1, frames * 1448 / bytes)
                for implementation in CRC32C.Implementation.allCases where implementation.isAvailable {
                    var crc: UInt32 = 0
                    let start = Monotonic.nanos()
                    for _ in 0..<iterations { crc = CRC32C.checksum(buffer, continuing: crc, using: implementation) }
                    let elapsed = Monotonic.nanos() - start
                    results.append(
                        ChecksumResult(
                            implementation: implementation, bytes: bytes,
                            nanosPerBuffer: Double(elapsed) / Double(iterations), checksum: crc))
                }
            }
        }
        return results
    }
}
