import FTVMHTTP
import SeededRandom
import XCTest

/// The golden conversations of `Goldens`, fed whole and in every split and causal interleaving:
/// the outcome must be exactly the golden one every time.
final class GoldenStreamTests: XCTestCase {
    /// Streams longer than this get sampled splits instead of every one.
    private let exhaustiveLimit = 4096
    /// Streams up to this long get every pair of split points.
    private let pairLimit = 128

    /// Each turn whole: the client's bytes, then the server's.
    private func turnOrder(_ golden: Golden) -> [Feed] {
        var feeds: [Feed] = []
        var client = 0
        var server = 0
        for turn in golden.turns {
            if turn.client > 0 { feeds.append(.request(client..<(client + turn.client))) }
            client += turn.client
            if turn.server > 0 { feeds.append(.response(server..<(server + turn.server))) }
            server += turn.server
        }
        return feeds
    }

    /// The outcome of feeding `golden` as `feeds` say, or nil (after reporting) when it is not
    /// the golden one. `reference` supplies the responseEnd positions every run must repeat.
    private func assertGolden(
        _ golden: Golden, _ feeds: [Feed], inPlace: Bool = false, reference: Outcome? = nil, _ how: String,
        file: StaticString = #filePath, line: UInt = #line
    ) -> Outcome? {
        let outcome: Outcome
        do {
            outcome = try drive(golden.client, golden.server, feeds, inPlace: inPlace)
        } catch {
            XCTFail("\(golden.name), \(how): \(error)", file: file, line: line)
            return nil
        }
        var expected = golden.expected
        expected.responseEnds = reference?.responseEnds ?? outcome.responseEnds
        if outcome != expected {
            var detail = "\(golden.name), \(how):\n  got      \(outcome)\n  expected \(expected)"
            if outcome.masked != expected.masked, golden.server.count < 2000 {
                detail += "\n  masked   \(text(outcome.masked).debugDescription)"
                detail += "\n  expected \(text(expected.masked).debugDescription)"
            }
            XCTFail(detail, file: file, line: line)
            return nil
        }
        return outcome
    }

    func testWholeStreams() {
        for golden in Goldens.all {
            guard let reference = assertGolden(golden, turnOrder(golden), "turn order") else { continue }
            _ = assertGolden(golden, turnOrder(golden), inPlace: true, reference: reference, "turn order, in place")
            if !golden.strict {
                let feeds = requestsFirst([0..<golden.client.count], [0..<golden.server.count])
                _ = assertGolden(golden, feeds, reference: reference, "requests first")
            }
            // Every exchange's response end was reported through responseEnd too.
            for exchange in golden.exchanges { XCTAssertTrue(reference.responseEnds.contains(exchange.responseEnd)) }
        }
    }

    /// Requests whole then responses cut at every point (and the other way round); every pair of
    /// points for short streams; many random multi-splits.
    func testEverySplit() {
        var rng = SplitMix64(seed: 0x5917)
        for golden in Goldens.all where !golden.strict {
            guard let reference = assertGolden(golden, turnOrder(golden), "turn order") else { continue }
            let client = golden.client.count
            let server = golden.server.count
            var failures = 0
            func check(_ feeds: [Feed], inPlace: Bool, _ how: @autoclosure () -> String) {
                guard failures < 3 else { return }
                if assertGolden(golden, feeds, inPlace: inPlace, reference: reference, how()) == nil { failures += 1 }
            }
            for cut in cutPoints(server, using: &rng) {
                let feeds = requestsFirst([0..<client], pieces(server, cuts: [cut]))
                check(feeds, inPlace: cut % 2 == 0, "response cut at \(cut)")
            }
            for cut in cutPoints(client, using: &rng) {
                let feeds = requestsFirst(pieces(client, cuts: [cut]), [0..<server])
                check(feeds, inPlace: cut % 2 == 1, "request cut at \(cut)")
            }
            if server <= pairLimit {
                for first in 1..<max(1, server) {
                    for second in (first + 1)..<max(first + 1, server) {
                        check(
                            requestsFirst([0..<client], pieces(server, cuts: [first, second])),
                            inPlace: second % 2 == 0,
                            "response cut at \(first), \(second)")
                    }
                }
            }
            if client <= pairLimit {
                for first in 1..<max(1, client) {
                    for second in (first + 1)..<max(first + 1, client) {
                        check(
                            requestsFirst(pieces(client, cuts: [first, second]), [0..<server]), inPlace: first % 2 == 0,
                            "request cut at \(first), \(second)")
                    }
                }
            }
            let rounds = server + client > exhaustiveLimit ? 20 : 200
            for round in 0..<rounds {
                let requestCuts = randomCuts(client, using: &rng)
                let responseCuts = randomCuts(server, using: &rng)
                check(
                    requestsFirst(pieces(client, cuts: requestCuts), pieces(server, cuts: responseCuts)),
                    inPlace: round % 2 == 0, "random cuts \(requestCuts) / \(responseCuts)")
            }
        }
    }

    /// Causal interleavings (each response after the request it answers; for a server that
    /// speaks first, strictly in turn order), cut at random.
    func testCausalInterleavings() {
        var rng = SplitMix64(seed: 0xCA05A1)
        for golden in Goldens.all {
            guard let reference = assertGolden(golden, turnOrder(golden), "turn order") else { continue }
            let rounds = golden.server.count + golden.client.count > exhaustiveLimit ? 20 : 300
            for round in 0..<rounds {
                let feeds = causalFeeds(turns: golden.turns, strict: golden.strict, using: &rng)
                let how = "causal interleaving \(round): \(feeds)"
                if assertGolden(golden, feeds, inPlace: round % 2 == 1, reference: reference, how) == nil { break }
            }
        }
    }

    /// Every cut point of a short stream; for long ones, a sample that includes both ends.
    private func cutPoints(_ count: Int, using rng: inout SplitMix64) -> [Int] {
        guard count > 1 else { return [] }
        if count <= exhaustiveLimit { return Array(1..<count) }
        return [1, 2, count - 2, count - 1] + (0..<200).map { _ in Int.random(in: 1..<count, using: &rng) }
    }

    /// The golden list covers what the brief lists; a guard against a case silently dropped.
    func testGoldenNamesAreUnique() {
        let names = Goldens.all.map(\.name)
        XCTAssertEqual(Set(names).count, names.count)
        XCTAssertGreaterThanOrEqual(names.count, 45)
    }
}
