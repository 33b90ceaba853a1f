import Foundation
import XCTest

/// The relay's connection log against what real clients did: the record of a live keep-alive
/// connection holds exactly the bytes the client sent (count and CRC32C computed by the client
/// itself) and the server offsets it received; concurrent downloads and uploads through the
/// logging relay stay byte-exact; closed connections free their records.
final class ConnectionLogTests: PairTestCase {
    override var pair: String { "itlog" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try Harness.ftvm(["up", "--name", pair])
    }

    func testLiveKeepAliveConnectionIsLoggedExactly() throws {
        let status = try Harness.status(pair)
        let namespace = try XCTUnwrap(status["namespace"] as? String)
        let address = try XCTUnwrap(status["serviceAddress"] as? String)

        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = [
            "ip", "netns", "exec", namespace, "python3",
            Harness.repository.appendingPathComponent("Tests/tools/keepalive_client.py").path, address,
        ]
        let input = Pipe()
        let output = Pipe()
        client.standardInput = input
        client.standardOutput = output
        try client.run()
        defer { if client.isRunning { client.terminate() } }
        let line = output.fileHandleForReading.availableLine()
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "client said: \(line)")
        let port = try XCTUnwrap(report["port"] as? Int)

        usleep(300_000)  // the client's last ACK reaches the relay
        let connections = try Harness.connections(pair)
        let record = try XCTUnwrap(
            connections.first { ($0["client"] as? String)?.hasSuffix(":\(port)") == true }, "\(connections)")
        XCTAssertEqual(record["state"] as? String, "open")
        XCTAssertEqual(
            record["clientBytesLogged"] as? Int, report["sent"] as? Int, "every byte the client sent was logged")
        // The three answered exchanges left the log; the unfinished request is all it holds.
        XCTAssertEqual(record["clientBytesHeld"] as? Int, report["unfinished"] as? Int, "\(record)")
        XCTAssertEqual(record["clientBytesCRC32C"] as? Int, report["unfinished_crc32c"] as? Int, "the same bytes")
        XCTAssertEqual(
            record["replayStartClientOffset"] as? Int,
            (report["sent"] as? Int ?? 0) - (report["unfinished"] as? Int ?? 0))
        XCTAssertEqual(record["replayStartServerOffset"] as? Int, report["received"] as? Int, "\(record)")
        XCTAssertEqual(record["isProtected"] as? Bool, true)
        XCTAssertEqual(record["framing"] as? String, "http")
        XCTAssertEqual(
            record["serverBytesAcked"] as? Int, report["received"] as? Int, "the client acknowledged what it read")
        XCTAssertEqual(record["serverBytesSent"] as? Int, report["received"] as? Int)

        input.fileHandleForWriting.write(Data("close\n".utf8))
        client.waitUntilExit()
        XCTAssertEqual(client.terminationStatus, 0)
        var open = try Harness.connections(pair)
        for _ in 0..<50 where !open.isEmpty {
            usleep(100_000)
            open = try Harness.connections(pair)
        }
        XCTAssertEqual(open.count, 0, "a closed connection frees its record: \(open)")
    }

    func testConcurrentDownloadsAndUploadsThroughTheLoggingRelay() throws {
        let status = try Harness.status(pair)
        let namespace = try XCTUnwrap(status["namespace"] as? String)
        let address = try XCTUnwrap(status["serviceAddress"] as? String)
        let directory = NSTemporaryDirectory() + "ftvm-log-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        var script = "set -e\n"
        let downloads = (0..<8).map { (size: 1_000_000 + $0 * 900_001, seed: UInt64(100 + $0)) }
        for (index, download) in downloads.enumerated() {
            script +=
                "ip netns exec \(namespace) curl -sS --fail --max-time 120 -o \(directory)/d\(index) 'http://\(address)/bytes/\(download.size)?seed=\(download.seed)' &\n"
        }
        for index in 0..<4 {
            script += "head -c \(700_000 + index * 333_333) /dev/urandom > \(directory)/u\(index)\n"
            script +=
                "ip netns exec \(namespace) curl -sS --fail --max-time 120 --data-binary @\(directory)/u\(index) -o \(directory)/u\(index).digest http://\(address)/sha256 &\n"
        }
        script += "wait\n"
        let run = try Harness.run(["bash", "-c", script])
        XCTAssertEqual(run.status, 0, run.combined)

        for (index, download) in downloads.enumerated() {
            XCTAssertEqual(
                try Harness.sha256(file: "\(directory)/d\(index)"),
                try Harness.referenceStreamSHA256(count: download.size, seed: download.seed), "download \(index)")
        }
        for index in 0..<4 {
            let digest = try String(contentsOfFile: "\(directory)/u\(index).digest", encoding: .utf8)
            XCTAssertEqual(
                digest.trimmingCharacters(in: .whitespacesAndNewlines),
                try Harness.sha256(file: "\(directory)/u\(index)"), "upload \(index)")
        }
        let log = try XCTUnwrap(try Harness.status(pair)["log"] as? [String: Any])
        XCTAssertGreaterThanOrEqual(log["connectionsLogged"] as? Int ?? 0, 12)
        let uploaded = (0..<4).reduce(0) { $0 + 700_000 + $1 * 333_333 }
        XCTAssertGreaterThan(log["bytesLogged"] as? Int ?? 0, uploaded, "every uploaded byte went through the log")
        // Each upload is well inside the 32 MiB budget and the log: all of them were protected.
        XCTAssertEqual(log["unprotectedOverBudget"] as? Int, 0, "\(log)")
        XCTAssertEqual(log["unprotectedLogFull"] as? Int, 0, "\(log)")
    }
}

extension FileHandle {
    /// Reads up to the first newline (the client's report).
    func availableLine() -> String {
        var bytes = Data()
        while true {
            let byte = readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
