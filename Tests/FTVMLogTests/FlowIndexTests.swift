import SeededRandom
import XCTest

@testable import FTVMLog

/// The open-addressing index against a Dictionary: inserts and backward-shift deletions in a
/// small, crowded table (capacity 8 for 4 slots) and a larger one, always agreeing.
final class FlowIndexTests: XCTestCase {
    func testAgreesWithADictionary() {
        for (slots, pool) in [(4, 12), (100, 300)] {
            var rng = SplitMix64(seed: UInt64(slots))
            let index = FlowIndex(slots: slots, seed: rng.next())
            var reference: [FlowKey: Int] = [:]
            var freeSlots = Array(0..<slots)
            for step in 0..<20_000 {
                let flow = key(Int.random(in: 0..<pool, using: &rng), port: UInt16.random(in: 80...81, using: &rng))
                if let slot = reference[flow] {
                    XCTAssertEqual(index.remove(flow), slot, "step \(step)")
                    reference[flow] = nil
                    freeSlots.append(slot)
                } else if let slot = freeSlots.popLast() {
                    XCTAssertTrue(index.insert(flow, slot: slot), "step \(step)")
                    XCTAssertFalse(index.insert(flow, slot: slot), "step \(step): a second insert")
                    reference[flow] = slot
                } else {
                    XCTAssertNil(index.remove(flow))
                }
                if step % 97 == 0 {
                    for n in 0..<pool {
                        for port: UInt16 in [80, 81] {
                            XCTAssertEqual(
                                index.find(key(n, port: port)), reference[key(n, port: port)], "step \(step)")
                        }
                    }
                }
            }
            index.removeAll()
            XCTAssertNil(index.find(reference.keys.first!))
        }
    }
}
