// The properties every tracker run must end with, shared by the unit tests (which collect the
// first failure) and the fuzzer (which traps): scripts/fuzz-wire.sh compiles this file into the
// fuzz binary with Sources/FTVMHTTP, where there is no FTVMHTTP module to import.
#if canImport(FTVMHTTP)
import FTVMHTTP
#endif

/// Checks the state a tracker ended in against what it reported on the way: the exchanges in
/// order and within what was fed, each at a reported response end, nothing masked past the
/// framing end and no response end after it, and a boundary only at the last exchange.
/// `check(condition, message)` is called for each property.
func checkTrackerEnd(
    _ tracker: HTTPExchangeTracker, exchanges: [HTTPExchange], responseEnds: [UInt64], masked: [UInt8],
    responses: [UInt8], check: (Bool, @autoclosure () -> String) -> Void
) {
    for (earlier, later) in zip(exchanges, exchanges.dropFirst()) {
        check(
            earlier.requestEnd < later.requestEnd && earlier.responseEnd < later.responseEnd, "exchanges not increasing"
        )
    }
    for exchange in exchanges {
        check(
            exchange.requestEnd <= tracker.requestBytes && exchange.responseEnd <= tracker.responseBytes, "beyond fed")
        check(responseEnds.contains(exchange.responseEnd), "exchange \(exchange) without responseEnd")
    }
    if let end = tracker.responseFramingEnd {
        check(end <= tracker.responseBytes, "framing end \(end) beyond fed")
        for offset in Int(end)..<masked.count {
            check(masked[offset] == responses[offset], "masked past the framing end")
        }
        for position in responseEnds { check(position <= end, "response end \(position) past the framing end") }
    }
    check(tracker.stop != nil || tracker.responseFramingEnd == nil, "framing end without stop")
    check(!tracker.isAtBoundary || tracker.stop == nil, "boundary after stop")
    if tracker.isAtBoundary {
        let here = HTTPExchange(requestEnd: tracker.requestBytes, responseEnd: tracker.responseBytes)
        let start = HTTPExchange(requestEnd: 0, responseEnd: 0)
        check((exchanges.last ?? start) == here, "at a boundary, but not at the last exchange")
    }
}
