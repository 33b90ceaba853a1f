import FTVMHTTP
import SeededRandom
import XCTest

/// Everything a tracker reports about a pair of streams, for comparing runs.
struct Outcome: Equatable, CustomStringConvertible {
    var exchanges: [HTTPExchange] = []
    /// Absolute response-stream offsets passed to `responseEnd`.
    var responseEnds: [UInt64] = []
    var masked: [UInt8] = []
    var stop: HTTPStop?
    var framingEnd: UInt64?
    var atBoundary = false

    var description: String {
        "exchanges \(exchanges) responseEnds \(responseEnds) stop \(stop.map { "\($0)" } ?? "nil") "
            + "framingEnd \(framingEnd.map { "\($0)" } ?? "nil") atBoundary \(atBoundary) masked \(masked.count) bytes"
    }
}

/// One feed call: a range of the request stream or of the response stream.
enum Feed: Equatable {
    case request(Range<Int>)
    case response(Range<Int>)
}

/// A property that failed while feeding (reported once, by the caller, with context).
struct PropertyFailure: Error, CustomStringConvertible {
    var description: String
}

/// Feeds `client` and `server` to a new tracker in the order `feeds` gives and collects the
/// outcome, checking on the way what must hold for any input: exchanges strictly increasing
/// and within what was fed, `responseEnd` positions inside the call and ascending, masked bytes
/// equal to the input or `-`, nothing masked past the framing end. `inPlace` masks into the
/// input buffer itself (the relay's case) instead of a separate one.
func drive(
    _ client: [UInt8], _ server: [UInt8], _ feeds: [Feed], inPlace: Bool = false
) throws(PropertyFailure) -> Outcome {
    var tracker = HTTPExchangeTracker()
    var exchanges: [HTTPExchange] = []
    var responseEnds: [UInt64] = []
    var masked = server
    var failure: String?
    func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition && failure == nil { failure = message() }
    }
    for feed in feeds {
        switch feed {
        case .request(let range):
            client.withUnsafeBytes { all in
                tracker.feedRequests(UnsafeRawBufferPointer(rebasing: all[range])) { exchanges.append($0) }
            }
            check(
                tracker.requestBytes == UInt64(range.upperBound), "requestBytes \(tracker.requestBytes) after \(range)")
        case .response(let range):
            var ends: [Int] = []
            if inPlace {
                masked.withUnsafeMutableBytes { all in
                    let slice = UnsafeMutableRawBufferPointer(rebasing: all[range])
                    tracker.feedResponses(UnsafeRawBufferPointer(slice), masked: slice) {
                        ends.append($0)
                    } exchange: {
                        exchanges.append($0)
                    }
                }
            } else {
                var output = [UInt8](repeating: 0xEE, count: range.count)
                server.withUnsafeBytes { all in
                    output.withUnsafeMutableBytes { out in
                        let input = UnsafeRawBufferPointer(rebasing: all[range])
                        tracker.feedResponses(input, masked: out) { position in
                            ends.append(position)
                            check(position > 0 && position <= input.count, "responseEnd \(position) outside the call")
                        } exchange: {
                            exchanges.append($0)
                        }
                    }
                }
                masked.replaceSubrange(range, with: output)
            }
            for offset in range where masked[offset] != server[offset] {
                check(masked[offset] == UInt8(ascii: "-"), "masked byte \(masked[offset]) at \(offset)")
            }
            check(ends == ends.sorted() && Set(ends).count == ends.count, "responseEnd not ascending: \(ends)")
            responseEnds += ends.map { UInt64(range.lowerBound + $0) }
            check(tracker.responseBytes == UInt64(range.upperBound), "responseBytes \(tracker.responseBytes)")
        }
        check(tracker.lastExchange == exchanges.last, "lastExchange")
        check(tracker.completedExchanges == UInt64(exchanges.count), "completedExchanges")
    }
    checkTrackerEnd(
        tracker, exchanges: exchanges, responseEnds: responseEnds, masked: masked, responses: server, check: check)
    if let failure { throw PropertyFailure(description: failure) }
    return Outcome(
        exchanges: exchanges, responseEnds: responseEnds, masked: masked, stop: tracker.stop,
        framingEnd: tracker.responseFramingEnd, atBoundary: tracker.isAtBoundary)
}

/// Splits `0..<count` at the given cut points (sorted, deduplicated, inside the range).
func pieces(_ count: Int, cuts: [Int]) -> [Range<Int>] {
    var result: [Range<Int>] = []
    var start = 0
    for cut in Set(cuts).sorted() where cut > start && cut < count {
        result.append(start..<cut)
        start = cut
    }
    result.append(start..<count)
    return result
}

/// Random cut points, from many tiny pieces to a few big ones.
func randomCuts(_ count: Int, using rng: inout SplitMix64) -> [Int] {
    guard count > 1 else { return [] }
    let density = [1, 2, 4, 16, 64, 512].randomElement(using: &rng)!
    return (0..<max(1, count / density)).map { _ in Int.random(in: 1..<count, using: &rng) }
}

/// A causal interleaving: the streams are made of turns (client bytes, then the server's
/// answer), and a server byte of turn t is fed only after every client byte of turns up to t.
/// With `strict`, client bytes of turn t+1 also wait for the server bytes of turns up to t (a
/// server that speaks first). Pieces are cut at random, either tiny or up to a whole turn.
func causalFeeds(turns: [(client: Int, server: Int)], strict: Bool, using rng: inout SplitMix64) -> [Feed] {
    var clientEnds: [Int] = []
    var serverEnds: [Int] = []
    for turn in turns {
        clientEnds.append((clientEnds.last ?? 0) + turn.client)
        serverEnds.append((serverEnds.last ?? 0) + turn.server)
    }
    let clientTotal = clientEnds.last ?? 0
    let serverTotal = serverEnds.last ?? 0
    var feeds: [Feed] = []
    var fedClient = 0
    var fedServer = 0
    let tiny = Bool.random(using: &rng)
    func size(_ available: Int) -> Int {
        min(available, tiny ? Int.random(in: 1...3, using: &rng) : Int.random(in: 1...available, using: &rng))
    }
    while fedClient < clientTotal || fedServer < serverTotal {
        var clientLimit = fedClient
        if fedClient < clientTotal {
            let turn = clientEnds.firstIndex { $0 > fedClient }!
            if !strict {
                clientLimit = clientTotal
            } else if turn == 0 || serverEnds[turn - 1] <= fedServer {
                clientLimit = clientEnds[turn]
            }
        }
        var serverLimit = fedServer
        if fedServer < serverTotal {
            let turn = serverEnds.firstIndex { $0 > fedServer }!
            if clientEnds[turn] <= fedClient { serverLimit = serverEnds[turn] }
        }
        let canClient = clientLimit > fedClient
        let canServer = serverLimit > fedServer
        precondition(canClient || canServer, "causal interleaving stuck")
        if canClient && (!canServer || Bool.random(using: &rng)) {
            let count = size(clientLimit - fedClient)
            feeds.append(.request(fedClient..<(fedClient + count)))
            fedClient += count
        } else {
            let count = size(serverLimit - fedServer)
            feeds.append(.response(fedServer..<(fedServer + count)))
            fedServer += count
        }
    }
    return feeds
}

/// Requests in the given pieces, then responses in theirs.
func requestsFirst(_ requestPieces: [Range<Int>], _ responsePieces: [Range<Int>]) -> [Feed] {
    requestPieces.filter { !$0.isEmpty }.map(Feed.request) + responsePieces.filter { !$0.isEmpty }.map(Feed.response)
}

func bytes(_ string: String) -> [UInt8] {
    Array(string.utf8)
}

func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}
