import FTVMHTTP
import SeededRandom
import XCTest

/// Deterministic randomized tests: random valid conversations against the generator's own
/// model, and random or mutated bytes against the properties any input must keep.
final class RandomizedTests: XCTestCase {
    /// Random conversations (methods, header sets, Date spellings, Content-Length and chunked
    /// bodies, interim responses, 100-continue, pipelining, terminal stops), fed whole, requests
    /// first in random pieces, and in random causal interleavings: always the model's outcome.
    func testRandomConversationsMatchTheModel() {
        var failures = 0
        var stops: [HTTPStop?: Int] = [:]
        var exchanges = 0
        for seed in UInt64(0)..<1500 where failures < 5 {
            var generator = ConversationGenerator(seed: seed)
            let golden = generator.conversation()
            var rng = SplitMix64(seed: seed ^ 0xFEED)
            var expected = golden.expected
            stops[expected.stop, default: 0] += 1
            exchanges += expected.exchanges.count
            var feedLists: [(String, [Feed])] = [
                ("requests first", requestsFirst([0..<golden.client.count], [0..<golden.server.count]))
            ]
            for round in 0..<3 {
                let cuts = (randomCuts(golden.client.count, using: &rng), randomCuts(golden.server.count, using: &rng))
                feedLists.append(
                    (
                        "random cuts \(round)",
                        requestsFirst(
                            pieces(golden.client.count, cuts: cuts.0), pieces(golden.server.count, cuts: cuts.1))
                    ))
                feedLists.append(("causal \(round)", causalFeeds(turns: golden.turns, strict: false, using: &rng)))
            }
            var reference: [UInt64]?
            for (index, (how, feeds)) in feedLists.enumerated() {
                do {
                    let outcome = try drive(golden.client, golden.server, feeds, inPlace: index % 2 == 1)
                    expected.responseEnds = reference ?? outcome.responseEnds
                    reference = outcome.responseEnds
                    if outcome != expected {
                        failures += 1
                        var detail = "seed \(seed), \(how):\n  got      \(outcome)\n  expected \(expected)"
                        if let first = zip(outcome.masked, expected.masked).enumerated().first(where: { $1.0 != $1.1 })
                        {
                            detail += "\n  masked differs first at \(first.offset)"
                        }
                        detail += "\n  client \(text(golden.client).debugDescription)"
                        detail += "\n  server \(text(golden.server).debugDescription)"
                        XCTFail(detail)
                        break
                    }
                } catch {
                    failures += 1
                    XCTFail("seed \(seed), \(how): \(error)")
                }
            }
        }
        // The generator must actually exercise the interesting paths.
        XCTAssertGreaterThan(exchanges, 2000)
        XCTAssertGreaterThan(stops[nil] ?? 0, 800)
        for reason in [HTTPStop.bodyUntilClose, .tunnel, .malformedRequest, .malformedResponse, .unsolicitedResponse] {
            XCTAssertGreaterThan(stops[reason] ?? 0, 10, "\(reason)")
        }
    }

    /// Random bytes on both sides, in random pieces: no trap, the properties hold, and every
    /// split of the same bytes (requests first) gives the same outcome.
    func testGarbageNeverTraps() {
        var rng = SplitMix64(seed: 0x6A8BA6E)
        let alphabets: [[UInt8]] = [
            Array(0...255),
            bytes("HTTP/1.1 200 GET /\r\n: Date chunked Content-Length Transfer-Encoding 0123456789abcdef;"),
            bytes("\r\n \t:0a"),
        ]
        for round in 0..<3000 {
            let alphabet = alphabets[round % alphabets.count]
            var client = (0..<Int.random(in: 0...300, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            var server = (0..<Int.random(in: 0...300, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            if round % 4 == 0 { client = bytes("GET / HTTP/1.1\r\n") + client }
            if round % 8 == 0 { server = bytes("HTTP/1.1 200 OK\r\n") + server }
            assertSplitInvariant(client, server, using: &rng, "garbage round \(round)")
        }
    }

    /// Valid conversations with a few bytes flipped, inserted or deleted: the same.
    func testMutatedConversations() {
        var rng = SplitMix64(seed: 0x3717A7E)
        for seed in UInt64(0)..<1500 {
            var generator = ConversationGenerator(seed: seed &+ 100_000)
            let golden = generator.conversation()
            var client = golden.client
            var server = golden.server
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let mutateClient = Bool.random(using: &rng)
                var stream = mutateClient ? client : server
                guard !stream.isEmpty else { continue }
                let at = Int.random(in: 0..<stream.count, using: &rng)
                let byte: UInt8 = [0, 9, 10, 13, 32, 44, 58, 59, 48, 70, 0x7F, 0xFF].randomElement(using: &rng)!
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: stream[at] = byte
                case 1: stream.insert(byte, at: at)
                default: stream.remove(at: at)
                }
                if mutateClient { client = stream } else { server = stream }
            }
            assertSplitInvariant(client, server, using: &rng, "mutated conversation \(seed)")
        }
    }

    private func assertSplitInvariant(
        _ client: [UInt8], _ server: [UInt8], using rng: inout SplitMix64, _ how: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let reference = try drive(client, server, requestsFirst([0..<client.count], [0..<server.count]))
            for round in 0..<3 {
                let feeds = requestsFirst(
                    pieces(client.count, cuts: randomCuts(client.count, using: &rng)),
                    pieces(server.count, cuts: randomCuts(server.count, using: &rng)))
                let outcome = try drive(client, server, feeds, inPlace: round == 1)
                if outcome != reference {
                    XCTFail(
                        "\(how): split changed the outcome\n  whole \(reference)\n  split \(outcome)\n  feeds \(feeds)\n"
                            + "  client \(text(client).debugDescription)\n  server \(text(server).debugDescription)",
                        file: file, line: line)
                    return
                }
            }
        } catch {
            XCTFail(
                "\(how): \(error)\n  client \(text(client).debugDescription)\n  server \(text(server).debugDescription)",
                file: file, line: line)
        }
    }
}
