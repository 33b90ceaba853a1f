import FTVMController
import Foundation
import XCTest

@testable import FTVMCLI

/// `ftvm watch`'s frames, from statuses real daemons answered (Golden/status-*.json, taken
/// with `ftvm status --json` around an injected kernel panic) to golden text.
final class WatchViewTests: XCTestCase {
    /// Each case: a status fixture (or an unreachable daemon), a width, and the golden frame.
    /// To accept an intended change, run once with FTVM_UPDATE_GOLDEN=1 (which rewrites the files
    /// and fails: nothing was checked), review the diff, and run again.
    func testFramesMatchGoldenFiles() throws {
        var filling = try Self.status("protected")
        var log = try XCTUnwrap(filling.log)
        log.openConnections = 7
        log.unprotectedConnections = 3
        log.bytesHeld = log.capacityBytes * 2 / 5
        filling.log = log
        let cases: [(golden: String, source: WatchView.Source, width: Int)] = [
            ("watch-protected-80", .status(try Self.status("protected")), 80),
            ("watch-reprotecting-100", .status(try Self.status("reprotecting")), 100),
            ("watch-replayed-80", .status(try Self.status("replayed")), 80),
            ("watch-replayed-52", .status(try Self.status("replayed")), 52),
            ("watch-filling-80", .status(filling), 80),
            ("watch-unreachable-60", .unreachable(ControlError.notRunning(name: "hwat").description), 60),
        ]
        for entry in cases {
            let frame =
                WatchView(pair: "hwat", source: entry.source, clock: "12:34:56", width: entry.width)
                .lines().joined(separator: "\n") + "\n"
            let golden = Self.golden.appendingPathComponent(entry.golden + ".txt")
            if ProcessInfo.processInfo.environment["FTVM_UPDATE_GOLDEN"] == "1" {
                try frame.write(to: golden, atomically: true, encoding: .utf8)
                XCTFail("FTVM_UPDATE_GOLDEN=1: rewrote \(golden.path); review the diff and run again without it")
                continue
            }
            XCTAssertEqual(
                frame, try String(contentsOf: golden, encoding: .utf8), "frame differs from \(entry.golden).txt")
        }
    }

    /// No line is wider than the terminal, at any width, and every line is ASCII.
    func testEveryLineFitsTheWidth() throws {
        let sources: [WatchView.Source] =
            try ["protected", "reprotecting", "replayed"].map { .status(try Self.status($0)) }
            + [.unreachable(ControlError.notRunning(name: "hwat").description)]
        for source in sources {
            for width in 1...220 {
                for line in WatchView(pair: "hwat", source: source, clock: "12:34:56", width: width).lines() {
                    XCTAssertLessThanOrEqual(line.count, width, "width \(width): '\(line)'")
                    XCTAssertTrue(line.unicodeScalars.allSatisfy(\.isASCII), line)
                }
            }
        }
    }

    /// The bar's cells add up to its width, every phase gets one, and what is left goes in
    /// proportion to the times (checked against the exact share, within one cell).
    func testSegmentsAreProportional() {
        let cases: [([Double], Int)] = [
            ([1, 0, 2.21, 73.37, 137.84, 32.65, 7658], 60), ([0, 0, 0], 9), ([5], 1), ([3, 1], 4), ([10, 10, 10], 31),
        ]
        for (millis, width) in cases {
            let cells = WatchView.segments(millis, width: width)
            XCTAssertEqual(cells.reduce(0, +), width, "\(millis) in \(width)")
            XCTAssertTrue(cells.allSatisfy { $0 >= 1 }, "\(cells)")
            let total = millis.reduce(0, +)
            for (ms, count) in zip(millis, cells) where total > 0 {
                let exact = 1 + ms / total * Double(width - millis.count)
                XCTAssertLessThan(abs(Double(count) - exact), 1, "\(millis) in \(width): \(cells)")
            }
        }
        XCTAssertEqual(WatchView.segments([3, 1], width: 6), [4, 2])
        XCTAssertEqual(WatchView.segments([], width: 6), [])
    }

    func testGauge() {
        XCTAssertEqual(WatchView.gauge(0, width: 12), "[..........]")
        XCTAssertEqual(WatchView.gauge(0.0001, width: 12), "[#.........]", "anything held shows")
        XCTAssertEqual(WatchView.gauge(0.5, width: 12), "[#####.....]")
        XCTAssertEqual(WatchView.gauge(2, width: 12), "[##########]")
    }

    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func status(_ name: String) throws -> PairStatus {
        let data = try Data(contentsOf: golden.appendingPathComponent("status-\(name).json"))
        return try JSONDecoder().decode(PairStatus.self, from: data)
    }
}
