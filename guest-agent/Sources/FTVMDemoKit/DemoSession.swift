/// The protocol side of one client connection: parser, the request in progress, and the
/// response bytes not yet sent. Owns no socket; the event loop moves bytes in and out.
///
/// Flow control is by refusal: while a response is pending, `receive` consumes nothing, so a
/// pipelining client cannot make the server queue more than one response. The caller keeps the
/// unconsumed bytes and offers them again once `hasOutput` is false.
public struct DemoSession {
    private enum Handler {
        case respond(DemoResponse)
        case sha256(SHA256)
    }

    private struct Exchange {
        var head: HTTPRequestHead
        var handler: Handler
    }

    private var parser: HTTPRequestParser
    private let router: DemoRouter
    private var exchange: Exchange?
    private var output = OutputQueue()

    /// The last response is queued (an error, or the client asked to close): once the output is
    /// drained, the caller closes the connection and ignores further input.
    public private(set) var isClosing = false

    public init(router: DemoRouter, headLimit: Int = HTTPRequestParser.defaultHeadLimit) {
        self.router = router
        parser = HTTPRequestParser(headLimit: headLimit)
    }

    public var hasOutput: Bool { !output.isEmpty }

    /// Whether `receive` would consume anything now.
    public var acceptsInput: Bool { output.isEmpty && !isClosing }

    /// Feeds received bytes; returns how many were consumed. Stops early when a response (or
    /// `100 Continue`) has been queued; the rest must be offered again after it is sent.
    public mutating func receive(_ input: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while acceptsInput {
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            let event: HTTPRequestEvent?
            do {
                let result = try parser.parse(rest)
                offset += result.consumed
                event = result.event
            } catch {
                exchange = nil
                queue(.forParseError(error), keepAlive: false, requestVersion: .http1_1)
                break
            }
            guard let event else { break }
            handle(event, in: rest)
        }
        return offset
    }

    private mutating func handle(_ event: HTTPRequestEvent, in input: UnsafeRawBufferPointer) {
        switch event {
        case .head(let head):
            let handler: Handler =
                switch router.route(head) {
                case .respond(let response): .respond(response)
                case .sha256: .sha256(SHA256())
                }
            exchange = Exchange(head: head, handler: handler)
            if head.expectsContinue {
                output.append(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            }
        case .body(let range):
            guard var current = exchange, case .sha256(var hasher) = current.handler else { return }
            hasher.update(UnsafeRawBufferPointer(rebasing: input[range]))
            current.handler = .sha256(hasher)
            exchange = current
        case .end:
            guard let current = exchange else { return }
            exchange = nil
            let response: DemoResponse =
                switch current.handler {
                case .respond(let response): response
                case .sha256(let hasher): .text(.ok, SHA256.hex(hasher.finalize()) + "\n")
                }
            queue(
                response, keepAlive: current.head.keepAlive, requestVersion: current.head.version,
                withBody: current.head.method != "HEAD")
        }
    }

    /// Queues the head and, unless the request was HEAD (RFC 9110 §9.3.2: the same head, no
    /// content, whatever the status), the body.
    private mutating func queue(
        _ response: DemoResponse, keepAlive: Bool, requestVersion: HTTPVersion, withBody: Bool = true
    ) {
        output.append(response.serializedHead(keepAlive: keepAlive, requestVersion: requestVersion))
        if withBody {
            switch response.body {
            case .bytes(let bytes): output.append(bytes)
            case .splitMix(let stream): output.append(stream)
            case .chunked(let stream): output.append(stream)
            case .none: break
            }
        }
        if !keepAlive { isClosing = true }
    }

    /// Copies pending output into `buffer` without consuming it; returns how many bytes.
    /// Call `advanceOutput(by:)` with what the socket actually took.
    public func peekOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        output.peek(into: buffer)
    }

    public mutating func advanceOutput(by count: Int) {
        output.advance(by: count)
    }
}
