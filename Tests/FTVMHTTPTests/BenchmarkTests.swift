import FTVMHTTP
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Throughput of the tracker, in ns per byte. Skipped unless FTVM_HTTP_BENCH is set; meaningful
/// only in release (`swift test -c release -Xswiftc -enable-testing --filter BenchmarkTests`).
final class BenchmarkTests: XCTestCase {
    private func skipUnlessAsked() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["FTVM_HTTP_BENCH"] != nil, "set FTVM_HTTP_BENCH=1 to run")
    }

    private func nanoseconds(_ body: () -> Void) -> Double {
        var start = timespec()
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        body()
        clock_gettime(CLOCK_MONOTONIC, &end)
        return Double(end.tv_sec - start.tv_sec) * 1e9 + Double(end.tv_nsec - start.tv_nsec)
    }

    /// Heads only: many small exchanges with browser-like request heads and nginx-like
    /// response heads (with Date), pipelined ten at a time, each batch one feed per direction.
    func testHeadThroughput() throws {
        try skipUnlessAsked()
        let request = bytes(
            "GET /static/app.js?v=12 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
                + "Accept: */*\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
                + "Cookie: session=0123456789abcdef\r\nConnection: keep-alive\r\n\r\n")
        let response = bytes(
            "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: \(date)\r\nContent-Type: application/javascript\r\n"
                + "Content-Length: 0\r\nLast-Modified: \(date)\r\nConnection: keep-alive\r\nETag: \"64f1-3a\"\r\n"
                + "Cache-Control: max-age=3600\r\n\r\n")
        let batch = 10
        let batches = 2000
        let client = [[UInt8]](repeating: request, count: batch).flatMap { $0 }
        let server = [[UInt8]](repeating: response, count: batch).flatMap { $0 }
        var output = [UInt8](repeating: 0, count: server.count)
        for round in 0..<3 {
            var tracker = HTTPExchangeTracker()
            var exchanges = 0
            var requestTime = 0.0
            var responseTime = 0.0
            client.withUnsafeBytes { client in
                server.withUnsafeBytes { server in
                    output.withUnsafeMutableBytes { out in
                        for _ in 0..<batches {
                            requestTime += nanoseconds { tracker.feedRequests(client) { _ in exchanges += 1 } }
                            responseTime += nanoseconds {
                                tracker.feedResponses(server, masked: out, responseEnd: { _ in }) { _ in exchanges += 1
                                }
                            }
                        }
                    }
                }
            }
            XCTAssertTrue(tracker.isAtBoundary)
            XCTAssertEqual(exchanges, batch * batches)
            let requestRate = String(format: "%.2f", requestTime / Double(batches * client.count))
            let responseRate = String(format: "%.2f", responseTime / Double(batches * server.count))
            print("heads round \(round): requests \(requestRate) ns/byte, responses (masking) \(responseRate) ns/byte")
        }
    }

    /// Bodies: 1 MiB Content-Length and chunked (16 KiB chunks) responses fed in 64 KiB
    /// segments, masked in place.
    func testBodyThroughput() throws {
        try skipUnlessAsked()
        let body = [UInt8](repeating: 0x61, count: 1 << 20)
        var lengthResponse = bytes("HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Length: \(body.count)\r\n\r\n") + body
        var chunkedResponse = bytes("HTTP/1.1 200 OK\r\nDate: \(date)\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in stride(from: 0, to: body.count, by: 16384) {
            chunkedResponse += bytes("4000\r\n") + body[start..<(start + 16384)] + bytes("\r\n")
        }
        chunkedResponse += bytes("0\r\n\r\n")
        let request = bytes("GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        for (name, response) in [("content-length", lengthResponse), ("chunked", chunkedResponse)] {
            var stream = response
            let repeats = 64
            var best = Double.infinity
            for _ in 0..<3 {
                var tracker = HTTPExchangeTracker()
                var exchanges = 0
                let time = nanoseconds {
                    for _ in 0..<repeats {
                        request.withUnsafeBytes { tracker.feedRequests($0) { _ in exchanges += 1 } }
                        stream.withUnsafeMutableBytes { all in
                            for start in stride(from: 0, to: all.count, by: 65536) {
                                let end = min(all.count, start + 65536)
                                let piece = UnsafeMutableRawBufferPointer(rebasing: all[start..<end])
                                tracker.feedResponses(
                                    UnsafeRawBufferPointer(piece), masked: piece, responseEnd: { _ in }
                                ) { _ in exchanges += 1 }
                            }
                        }
                    }
                }
                XCTAssertEqual(exchanges, repeats)
                best = min(best, time / Double(repeats * response.count))
            }
            print("body \(name): \(String(format: "%.4f", best)) ns/byte")
        }
        lengthResponse.removeAll()
        chunkedResponse.removeAll()
    }
}
