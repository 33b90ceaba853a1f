// libFuzzer entry point for FTVMHTTP. Built by scripts/fuzz-wire.sh together with
// Sources/FTVMHTTP/*.swift into one module, with -sanitize=fuzzer,address. Every piece fed to
// the tracker is copied into a heap buffer of exactly its size, so a read or write past a piece
// is an ASan report.
//
// Input layout:
//   byte 0      flags: bit 0 masks in place (the relay's case) in the split run
//   bytes 1-2   big-endian length of the request stream (taken modulo what is left)
//   bytes 3-4   seed for the split points
//   then        the request stream, then the response stream
//
// Beyond "does not crash", it checks properties and traps when one fails:
// - masked output has the input's length and differs from it only where a byte became '-';
//   nothing at or after responseFramingEnd is changed;
// - exchanges strictly increase on both streams, lie within what was fed, and each exchange's
//   response end was reported through responseEnd; responseEnd positions are inside their call
//   and ascending;
// - the byte counters match what was fed; a tracker at a boundary has not stopped; a framing
//   end implies a stop;
// - the outcome (exchanges, responseEnds, masked bytes, stop, framing end, isAtBoundary) is the
//   same for the whole streams fed requests-first and for the same bytes in seeded random
//   pieces; and the same for a seeded interleaving of the two streams, unless that
//   interleaving is not causal (it ends with .unsolicitedResponse) or the requests-first run
//   hit the pipelining capacity, which an interleaving may not.

@_cdecl("LLVMFuzzerTestOneInput")
public func httpFuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 5 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let flags = input[0]
    let rest = size - 5
    let requestLength = rest == 0 ? 0 : (Int(input[1]) << 8 | Int(input[2])) % (rest + 1)
    var rng = FuzzRandom(seed: UInt64(input[3]) << 8 | UInt64(input[4]))
    let requests = Array(input[5..<(5 + requestLength)])
    let responses = Array(input[(5 + requestLength)...])

    let whole = run(
        requests, responses, [.request(0..<requests.count), .response(0..<responses.count)], inPlace: false)

    var split: [Step] = pieces(requests.count, &rng).map { .request($0) }
    split += pieces(responses.count, &rng).map { .response($0) }
    let pieceRun = run(requests, responses, split, inPlace: flags & 1 != 0)
    require(pieceRun == whole, "split changed the outcome: \(whole) vs \(pieceRun), steps \(split)")

    var interleaved: [Step] = []
    var requestPieces = pieces(requests.count, &rng)[...]
    var responsePieces = pieces(responses.count, &rng)[...]
    while !requestPieces.isEmpty || !responsePieces.isEmpty {
        // Requests lead: a response piece only after some request bytes, mostly.
        if !requestPieces.isEmpty && (responsePieces.isEmpty || rng.next() % 3 != 0) {
            interleaved.append(.request(requestPieces.removeFirst()))
        } else {
            interleaved.append(.response(responsePieces.removeFirst()))
        }
    }
    let interleavedRun = run(requests, responses, interleaved, inPlace: flags & 1 == 0)
    if interleavedRun.stop != .unsolicitedResponse && whole.stop != .tooManyPipelined {
        require(
            interleavedRun == whole,
            "interleaving changed the outcome: \(whole) vs \(interleavedRun), steps \(interleaved)")
    }
    return 0
}

private func fail(_ message: String) -> Never {
    fatalError("property failed: \(message)")
}

private func require(_ condition: Bool, _ message: @autoclosure () -> String = "", line: Int = #line) {
    if !condition { fail("line \(line) \(message())") }
}

/// SplitMix64, seeded from the input.
private struct FuzzRandom {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `0..<count` cut into pieces of seeded sizes: tiny (1–3 bytes) or larger, varying.
private func pieces(_ count: Int, _ rng: inout FuzzRandom) -> [Range<Int>] {
    var result: [Range<Int>] = []
    var start = 0
    let tiny = rng.next() % 2 == 0
    while start < count {
        let size = tiny ? Int(rng.next() % 3) + 1 : Int(rng.next() % UInt64(count)) + 1
        let end = min(count, start + size)
        result.append(start..<end)
        start = end
    }
    return result
}

private enum Step: CustomStringConvertible {
    case request(Range<Int>)
    case response(Range<Int>)

    var description: String {
        switch self {
        case .request(let range): "q\(range)"
        case .response(let range): "r\(range)"
        }
    }
}

private struct Outcome: Equatable, CustomStringConvertible {
    var exchanges: [HTTPExchange] = []
    var responseEnds: [UInt64] = []
    var masked: [UInt8] = []
    var stop: HTTPStop?
    var framingEnd: UInt64?
    var atBoundary = false

    var description: String {
        "exchanges \(exchanges) ends \(responseEnds) stop \(String(describing: stop)) "
            + "framingEnd \(String(describing: framingEnd)) atBoundary \(atBoundary)"
    }
}

/// Feeds the steps to a new tracker, each piece from an exact-size heap copy, checking the
/// per-call properties.
private func run(_ requests: [UInt8], _ responses: [UInt8], _ steps: [Step], inPlace: Bool) -> Outcome {
    var tracker = HTTPExchangeTracker()
    var outcome = Outcome()
    var exchanges: [HTTPExchange] = []
    var responseEnds: [UInt64] = []
    var masked = [UInt8](repeating: 0, count: responses.count)
    for step in steps {
        switch step {
        case .request(let range):
            guard !range.isEmpty else { continue }
            let piece = exactCopy(requests, range)
            defer { piece.deallocate() }
            tracker.feedRequests(UnsafeRawBufferPointer(piece)) { exchanges.append($0) }
            require(tracker.requestBytes == UInt64(range.upperBound), "requestBytes")
        case .response(let range):
            guard !range.isEmpty else { continue }
            let piece = exactCopy(responses, range)
            defer { piece.deallocate() }
            let output = inPlace ? piece : UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 1)
            defer { if !inPlace { output.deallocate() } }
            var ends: [Int] = []
            tracker.feedResponses(UnsafeRawBufferPointer(piece), masked: output) { position in
                require(position > 0 && position <= range.count, "responseEnd \(position) outside the call")
                require(ends.last.map { $0 < position } ?? true, "responseEnd not ascending")
                ends.append(position)
            } exchange: {
                exchanges.append($0)
            }
            for offset in 0..<range.count {
                let byte = output[offset]
                masked[range.lowerBound + offset] = byte
                require(
                    byte == responses[range.lowerBound + offset] || byte == UInt8(ascii: "-"), "masked byte \(byte)")
            }
            responseEnds += ends.map { UInt64(range.lowerBound + $0) }
            require(tracker.responseBytes == UInt64(range.upperBound), "responseBytes")
        }
        require(tracker.lastExchange == exchanges.last && tracker.completedExchanges == UInt64(exchanges.count))
    }
    checkTrackerEnd(
        tracker, exchanges: exchanges, responseEnds: responseEnds, masked: masked, responses: responses,
        check: { condition, message in require(condition, message()) })
    outcome.exchanges = exchanges
    outcome.responseEnds = responseEnds
    outcome.masked = masked
    outcome.stop = tracker.stop
    outcome.framingEnd = tracker.responseFramingEnd
    outcome.atBoundary = tracker.isAtBoundary
    return outcome
}

private func exactCopy(_ bytes: [UInt8], _ range: Range<Int>) -> UnsafeMutableRawBufferPointer {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 1)
    bytes.withUnsafeBytes { all in copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[range])) }
    return copy
}
