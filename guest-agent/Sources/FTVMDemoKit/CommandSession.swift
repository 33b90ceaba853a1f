/// The protocol side of one connection to the demo's command port: a line-oriented
/// request/response protocol that is not HTTP, so the relay cannot find its exchange boundaries
/// by itself and the service reports them with the explicit trim API (docs/trim-api.md).
///
/// One command per line, terminated by LF (a CR before it is dropped), case-sensitive:
///
/// | Command        | Reply                                                                  |
/// |----------------|------------------------------------------------------------------------|
/// | `PING`         | `PONG\n`                                                               |
/// | `ECHO text`    | `text\n` (`ECHO` alone: `\n`)                                          |
/// | `BYTES N SEED` | `DATA N\n`, then N bytes of splitmix64 output seeded with SEED         |
/// | `VERSION`      | the version file, trimmed, then `\n`                                   |
/// | anything else  | `ERR unknown command\n` (an empty line too); bad BYTES arguments:      |
/// |                | `ERR usage: BYTES N SEED\n`                                            |
///
/// A line longer than `lineLimit` bytes (without its CR LF) gets `ERR line too long\n` and the
/// connection is closed: the service cannot know where the next command starts without reading
/// the rest, and buffering it is what the limit refuses.
///
/// Like `DemoSession`, it owns no socket and answers one command at a time: while a reply is
/// pending, `receive` consumes nothing (flow control by refusal), so pipelined commands wait in
/// the caller's inbox and are answered in order. Every reply is a function of the command line
/// and the version file, so a replaying backup regenerates it byte for byte.
public struct CommandSession {
    public static let lineLimit = 4096

    /// Where a connection may be trimmed: the client has sent `clientOffset` bytes that are all
    /// answered, and the service has written `serverOffset` bytes, the last reply included.
    /// Offsets count from the connection's first byte (mod 2^64).
    public struct Boundary: Sendable, Equatable {
        public var clientOffset: UInt64
        public var serverOffset: UInt64

        public init(clientOffset: UInt64, serverOffset: UInt64) {
            self.clientOffset = clientOffset
            self.serverOffset = serverOffset
        }
    }

    private let readVersion: () -> [UInt8]?
    /// The current command line so far, at most `lineLimit + 1` bytes (room for a final CR).
    private var line: [UInt8] = []
    private var output = OutputQueue()
    /// The boundary the pending reply completes; reported when its last byte is committed.
    private var pendingBoundary: Boundary?

    /// Input bytes consumed since the connection opened.
    public private(set) var bytesConsumed: UInt64 = 0
    /// Output bytes committed (taken by the socket) since the connection opened.
    public private(set) var bytesWritten: UInt64 = 0
    /// Output bytes queued since the connection opened (`bytesWritten` plus what is pending).
    private var bytesQueued: UInt64 = 0

    /// The last reply is queued (a line too long): once the output is drained, the caller closes
    /// the connection and ignores further input.
    public private(set) var isClosing = false

    /// `readVersion` reads the version file for `VERSION`, per command (an upgrade may rewrite it).
    public init(readVersion: @escaping () -> [UInt8]?) {
        self.readVersion = readVersion
        line.reserveCapacity(64)
    }

    public var hasOutput: Bool { !output.isEmpty }

    /// Whether `receive` would consume anything now.
    public var acceptsInput: Bool { output.isEmpty && !isClosing }

    /// Feeds received bytes; returns how many were consumed. Stops right after a command's LF
    /// (its reply is then pending); the rest must be offered again once `hasOutput` is false.
    public mutating func receive(_ input: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while acceptsInput && offset < input.count {
            let byte = input[offset]
            if byte == UInt8(ascii: "\n") {
                offset += 1
                bytesConsumed &+= 1
                var content = line[...]
                if content.last == UInt8(ascii: "\r") { content = content.dropLast() }
                if content.count > Self.lineLimit {
                    refuseLongLine()
                } else {
                    answer(content)
                }
                line.removeAll(keepingCapacity: true)
                break
            }
            // `lineLimit + 1` bytes and more to come: too long even if the last of them is a CR.
            guard line.count <= Self.lineLimit else {
                refuseLongLine()
                break
            }
            line.append(byte)
            offset += 1
            bytesConsumed &+= 1
        }
        return offset
    }

    /// Copies pending output into `buffer` without consuming it; returns how many bytes.
    /// Call `advanceOutput(by:)` with what the socket actually took.
    public func peekOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        output.peek(into: buffer)
    }

    /// Commits `count` bytes the socket took. Returns the boundary when they end a reply: the
    /// moment to send the trim request, and not before (until the socket has the whole reply, a
    /// new connection at that point would not be equivalent).
    @discardableResult
    public mutating func advanceOutput(by count: Int) -> Boundary? {
        bytesWritten &+= UInt64(output.advance(by: count))
        guard output.isEmpty, let boundary = pendingBoundary else { return nil }
        pendingBoundary = nil
        return boundary
    }

    // MARK: Commands

    private mutating func answer(_ command: ArraySlice<UInt8>) {
        if command.elementsEqual("PING".utf8) {
            reply(Array("PONG\n".utf8))
        } else if command.elementsEqual("ECHO".utf8) {
            reply([UInt8(ascii: "\n")])
        } else if command.starts(with: "ECHO ".utf8) {
            reply(Array(command.dropFirst(5)) + [UInt8(ascii: "\n")])
        } else if command.elementsEqual("VERSION".utf8) {
            guard let contents = readVersion() else { return reply(Array("ERR version file unreadable\n".utf8)) }
            reply(Array(DemoRouter.trimmingWhitespace(contents)) + [UInt8(ascii: "\n")])
        } else if command.elementsEqual("BYTES".utf8) || command.starts(with: "BYTES ".utf8) {
            let arguments = command.dropFirst(6).split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard arguments.count == 2, let count = Self.decimal(arguments[0]), let seed = Self.decimal(arguments[1])
            else {
                return reply(Array("ERR usage: BYTES N SEED\n".utf8))
            }
            reply(Array("DATA \(count)\n".utf8), then: SplitMix64Stream(seed: seed, length: count))
        } else {
            reply(Array("ERR unknown command\n".utf8))
        }
    }

    /// Queues a reply and the boundary it completes.
    private mutating func reply(_ bytes: [UInt8], then stream: SplitMix64Stream? = nil) {
        output.append(bytes)
        bytesQueued &+= UInt64(bytes.count)
        if let stream {
            output.append(stream)
            bytesQueued &+= stream.remaining
        }
        pendingBoundary = Boundary(clientOffset: bytesConsumed, serverOffset: bytesQueued)
    }

    private mutating func refuseLongLine() {
        let refusal = Array("ERR line too long\n".utf8)
        output.append(refusal)
        bytesQueued &+= UInt64(refusal.count)
        isClosing = true
    }

    private static func decimal(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        HTTPRequestParser.parseDecimal(String(decoding: bytes, as: UTF8.self))
    }
}
