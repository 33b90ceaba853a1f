import FTVMHTTP
import SeededRandom

/// Random valid HTTP/1.x conversations, with what the tracker must report computed on the way.
///
/// The generator is the independent model: it knows where each message ends because it wrote
/// it, and which bytes are a Date value because it put them there. It shares no code with the
/// tracker; it only uses `Golden` to record the two streams, the turns and the expectations.
struct ConversationGenerator {
    var rng: SplitMix64
    private var golden: Golden

    init(seed: UInt64) {
        rng = SplitMix64(seed: seed)
        golden = Golden("random conversation \(seed)")
    }

    private mutating func chance(_ percent: Int) -> Bool {
        Int.random(in: 0..<100, using: &rng) < percent
    }

    private mutating func pick<T>(_ choices: [T]) -> T {
        choices.randomElement(using: &rng)!
    }

    private mutating func eol() -> [UInt8] {
        chance(85) ? [13, 10] : [10]
    }

    private mutating func ows() -> [UInt8] {
        pick([[], [], [32], [32, 32], [9], [32, 9]])
    }

    /// A header name in random case.
    private mutating func mangle(_ name: String) -> [UInt8] {
        bytes(name).map { byte in
            let isLetter = (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A
            guard isLetter else { return byte }
            return chance(30) ? (chance(50) ? byte | 0x20 : byte & ~0x20) : byte
        }
    }

    private mutating func token(_ length: ClosedRange<Int>) -> [UInt8] {
        let alphabet = bytes("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")
        return (0..<Int.random(in: length, using: &rng)).map { _ in pick(alphabet) }
    }

    /// A field value that starts and ends with a visible byte (so OWS around it is OWS).
    private mutating func value(_ length: ClosedRange<Int>) -> [UInt8] {
        let visible =
            bytes("abcdefghijklmnopqrstuvwxyz0123456789 :;,=/\"()<>@?[]{}HTTP/1.1 Date:\t")
            + [0x80, 0xC3, 0xA9, 0xFF]
        var result = (0..<Int.random(in: length, using: &rng)).map { _ in pick(visible) }
        if result.isEmpty || result[0] == 32 || result[0] == 9 { result.insert(UInt8(ascii: "v"), at: 0) }
        if result.last == 32 || result.last == 9 { result.append(UInt8(ascii: "e")) }
        return result
    }

    /// Random bytes for a body: anything, including what looks like heads and Date lines.
    private mutating func body(_ count: Int) -> [UInt8] {
        var result: [UInt8] = []
        while result.count < count {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: result += bytes("\r\nDate: \(date)\r\n")
            case 1: result += bytes("HTTP/1.1 200 OK\r\n\r\n")
            default: result += (0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
        }
        return Array(result.prefix(count))
    }

    /// Header lines that mean nothing to framing: (sent, masked).
    private mutating func otherFields(response: Bool, trailers: Bool = false) -> ([UInt8], [UInt8]) {
        var sent: [UInt8] = []
        var masked: [UInt8] = []
        for _ in 0..<Int.random(in: 0...5, using: &rng) {
            let names = [
                "Host", "User-Agent", "Accept", "X-Date", "Dates", "Date-Time", "Content-Type", "Content-Lengths",
                "Transfer-Encodings", "Content-Lengt", "Cookie", "Last-Modified", "ETag", "Dat", "Transfer-Encodin",
            ]
            var line = chance(20) ? bytes("X-") + token(1...40) : mangle(pick(names))
            line += bytes(":") + ows() + (chance(10) ? [] : value(0...60)) + ows() + eol()
            sent += line
            masked += line
            if (!response || trailers) && chance(15) {
                // A Date in a request or in trailers is not masked.
                let date = mangle("Date") + bytes(":") + ows() + value(1...40) + eol()
                sent += date
                masked += date
            }
        }
        return (sent, masked)
    }

    /// A Date field line: (sent, masked). Everything from the first non-OWS byte to the line end
    /// is masked, trailing whitespace included.
    private mutating func dateField() -> ([UInt8], [UInt8]) {
        let name = mangle("Date") + bytes(":") + ows()
        let body = (chance(70) ? bytes(date) : value(1...40)) + ows()
        let end = eol()
        return (name + body + end, name + [UInt8](repeating: UInt8(ascii: "-"), count: body.count) + end)
    }

    private enum Body {
        case none, length(Int), chunked
    }

    /// Chunked data and trailers for `total` bytes: (bytes).
    private mutating func chunked(_ total: Int) -> [UInt8] {
        var result: [UInt8] = []
        var left = total
        while left > 0 {
            let size = min(left, Int.random(in: 1...120, using: &rng))
            var hex = String(size, radix: 16, uppercase: chance(50))
            if chance(10) { hex = "00" + hex }
            result += bytes(hex)
            if chance(20) {
                result += ows() + bytes(";") + token(1...10) + (chance(50) ? bytes("=") + token(1...5) : [])
            }
            result += eol() + body(size) + eol()
            left -= size
        }
        result += bytes(chance(20) ? "000" : "0")
        if chance(20) { result += bytes(";last") }
        result += eol()
        if chance(30) {
            result += otherFields(response: false, trailers: true).0
            if chance(30) { result += bytes("Content-Length: 999") + eol() }
        }
        return result + eol()
    }

    private mutating func framingFields(_ body: Body, version: Int) -> [UInt8] {
        switch body {
        case .none:
            return []
        case .length(let count):
            var line = mangle("Content-Length") + bytes(":") + ows()
            line += bytes(chance(10) ? "\(count), \(count)" : "\(count)") + ows() + eol()
            if chance(10) { line += bytes("Content-Length: \(count)") + eol() }
            return line
        case .chunked:
            precondition(version == 1)
            return mangle("Transfer-Encoding") + bytes(":") + ows()
                + bytes(pick(["chunked", "gzip, chunked", "Chunked"]))
                + ows() + eol()
        }
    }

    private struct Request {
        var head: [UInt8]
        var body: [UInt8]
        var method: String
    }

    private mutating func request(method forced: String? = nil, extra: [UInt8] = [], noBody: Bool = false) -> Request {
        let method = forced ?? pick(["GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "PROPFIND"])
        let version = chance(85) ? 1 : 0
        var head = chance(8) ? pick([bytes("\r\n"), bytes("\n"), bytes("\r\n\r\n")]) : []
        let target = method == "OPTIONS" && chance(50) ? bytes("*") : bytes("/") + token(0...30)
        head += bytes(method + " ") + target + bytes(" HTTP/1.\(version)") + eol()
        let kind: Body
        if noBody || method == "GET" && chance(80) || method == "HEAD" {
            kind = .none
        } else {
            kind = version == 1 && chance(40) ? .chunked : .length(Int.random(in: 0...400, using: &rng))
        }
        let (others, _) = otherFields(response: false)
        let framing = framingFields(kind, version: version)
        head += chance(50) ? others + framing : framing + others
        head += extra + eol()
        var body: [UInt8] = []
        switch kind {
        case .none: break
        case .length(let count): body = self.body(count)
        case .chunked: body = chunked(Int.random(in: 0...400, using: &rng))
        }
        return Request(head: head, body: body, method: method)
    }

    /// A response head and body: (sent, masked). `status` nil picks a random final status.
    private mutating func response(to method: String, status forced: Int? = nil) -> ([UInt8], [UInt8]) {
        let status = forced ?? pick([200, 200, 200, 201, 202, 204, 206, 301, 302, 304, 400, 404, 417, 500, 503])
        let version = chance(90) ? 1 : 0
        var reason = bytes(pick(["", " OK", " Whatever It Is", " ", " \u{e9}t\u{e9}"]))
        if chance(5) { reason = bytes(" ") + value(0...20) }
        var sent = bytes("HTTP/1.\(version) \(status)") + reason + eol()
        var masked = sent
        let bodiless = method == "HEAD" || status == 204 || status == 304 || status < 200
        let kind: Body
        if status < 200 {
            kind = .none
        } else if version == 1 && chance(40) {
            kind = .chunked
        } else {
            kind = .length(Int.random(in: 0...600, using: &rng))
        }
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            if chance(50) {
                let (line, maskedLine) = dateField()
                sent += line
                masked += maskedLine
            } else {
                let (line, maskedLine) = otherFields(response: true)
                sent += line
                masked += maskedLine
            }
        }
        let framing = framingFields(kind, version: version) + eol()
        sent += framing
        masked += framing
        if !bodiless {
            let data: [UInt8]
            switch kind {
            case .none: data = []
            case .length(let count): data = body(count)
            case .chunked: data = chunked(Int.random(in: 0...600, using: &rng))
            }
            sent += data
            masked += data
        }
        return (sent, masked)
    }

    /// One random conversation.
    mutating func conversation() -> Golden {
        var exchanges = Int.random(in: 0...6, using: &rng)
        while exchanges > 0 {
            // A batch of pipelined requests, or one with Expect: 100-continue.
            if chance(15) {
                exchanges -= 1
                expectContinue()
                continue
            }
            let depth = min(exchanges, chance(70) ? 1 : Int.random(in: 2...5, using: &rng))
            exchanges -= depth
            var requests: [(end: Int, method: String)] = []
            for _ in 0..<depth {
                let request = request()
                golden.client(request.head + request.body)
                requests.append((golden.client.count, request.method))
            }
            for request in requests {
                for _ in 0..<(chance(15) ? Int.random(in: 1...2, using: &rng) : 0) {
                    let (sent, masked) = response(to: request.method, status: pick([100, 102, 103]))
                    golden.server(sent, masked: masked)
                }
                let (sent, masked) = response(to: request.method)
                golden.server(sent, masked: masked)
                golden.appendExchange(HTTPExchange(requestEnd: UInt64(request.end), responseEnd: golden.serverCount))
            }
        }
        if chance(25) { terminal() }
        return golden
    }

    /// A request with Expect: 100-continue: head, then 100 Continue and the body, or a final
    /// answer before the body (which the client sends anyway).
    private mutating func expectContinue() {
        var request = request(method: "PUT", extra: bytes("Expect: 100-continue") + eol())
        if request.body.isEmpty {
            request = self.request(method: "POST", extra: bytes("Expect: 100-continue") + eol())
        }
        golden.client(request.head)
        if chance(70) || request.body.isEmpty {
            let (interim, maskedInterim) = response(to: "PUT", status: 100)
            golden.server(interim, masked: maskedInterim)
            golden.client(request.body)
            let (sent, masked) = response(to: "PUT")
            golden.server(sent, masked: masked)
            golden.exchange()
        } else {
            let (sent, masked) = response(to: "PUT", status: pick([417, 413, 401]))
            golden.server(sent, masked: masked)
            golden.client(request.body)
            golden.exchange()
        }
    }

    /// How a conversation can end other than at a boundary.
    private mutating func terminal() {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0:
            // A response delimited by close.
            golden.client(bytes("GET /stream HTTP/1.1") + eol() + eol())
            let (dates, masked) = dateField()
            let statusLine = bytes("HTTP/1.1 200 OK") + eol()
            golden.server(statusLine + dates, masked: statusLine + masked)
            golden.server(eol())
            golden.stops(.bodyUntilClose)
            golden.server(body(Int.random(in: 0...200, using: &rng)))
        case 1:
            golden.client(bytes("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
            golden.server(bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"))
            golden.stops(.tunnel)
            golden.client(body(Int.random(in: 0...100, using: &rng)))
            golden.server(body(Int.random(in: 0...100, using: &rng)))
        case 2:
            golden.client(bytes("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"))
            let (dates, masked) = dateField()
            golden.server(bytes("HTTP/1.1 200 OK\r\n") + dates, masked: bytes("HTTP/1.1 200 OK\r\n") + masked)
            golden.server(bytes("\r\n"))
            golden.stops(.tunnel)
            golden.client(body(Int.random(in: 0...100, using: &rng)))
            golden.server(body(Int.random(in: 0...100, using: &rng)))
        case 3:
            // obs-fold in a request: responses so far stand, the 400 is not framed.
            golden.client(bytes("GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n"))
            golden.stops(.malformedRequest)
            golden.server(bytes("HTTP/1.1 400 Bad Request\r\nDate: \(date)\r\n\r\n"))
        case 4:
            // Whitespace in a response field name, after a masked Date.
            golden.client(bytes("GET / HTTP/1.1\r\n\r\n"))
            let (dates, masked) = dateField()
            let statusLine = bytes("HTTP/1.1 200 OK\r\n")
            golden.server(statusLine + dates + bytes("Bad"), masked: statusLine + masked + bytes("Bad"))
            golden.stops(.malformedResponse)
            golden.server(bytes(" Header: x\r\nContent-Length: 0\r\n\r\n"))
        default:
            // More responses than requests.
            golden.stops(.unsolicitedResponse)
            golden.server(bytes("HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Length: 0\r\n\r\n"))
        }
    }
}
