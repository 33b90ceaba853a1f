import Foundation

/// The answers to pipelined requests (RFC 9112 §9.3.2), read off one connection in order: each
/// status line, head and body, the body delivered as it arrives (de-chunked when the answer is
/// chunked), whatever way the stream was cut into reads. Answers with a Content-Length or a
/// chunked body only: an answer delimited by the close of the connection cannot be told from
/// one cut short. 1xx interim answers are skipped.
struct PipelinedAnswers {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case tooLargeHead

        var description: String {
            switch self {
            case .malformed(let what): "a malformed answer: \(what)"
            case .tooLargeHead: "an answer head over 64 KiB"
            }
        }
    }

    enum Event: Equatable {
        /// Bytes of answer `index`'s body.
        case body(index: Int, [UInt8])
        /// Answer `index` is complete, with its status.
        case complete(index: Int, status: Int)
    }

    private enum State: Equatable {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
    }

    private var state = State.head
    private var line: [UInt8] = []
    private var head: [UInt8] = []
    private var status = 0
    /// Answers complete so far (the index of the one being read).
    private(set) var completed = 0
    static let headLimit = 65536

    /// Whether the stream stands between two answers (nothing of the next one read).
    var isBetweenAnswers: Bool { state == .head && head.isEmpty }

    mutating func feed(_ bytes: some Collection<UInt8>) throws(Failure) -> [Event] {
        var events: [Event] = []
        var index = bytes.startIndex
        while index != bytes.endIndex {
            switch state {
            case .head:
                head.append(bytes[index])
                index = bytes.index(after: index)
                guard head.count <= Self.headLimit else { throw .tooLargeHead }
                if head.count >= 4, head.suffix(4).elementsEqual([13, 10, 13, 10]) { try headEnded(&events) }
            case .fixed(let remaining):
                let end = bytes.index(index, offsetBy: remaining, limitedBy: bytes.endIndex) ?? bytes.endIndex
                let taken = Array(bytes[index..<end])
                index = end
                events.append(.body(index: completed, taken))
                if taken.count == remaining {
                    complete(&events)
                } else {
                    state = .fixed(remaining: remaining - taken.count)
                }
            case .chunkData(let remaining):
                let end = bytes.index(index, offsetBy: remaining, limitedBy: bytes.endIndex) ?? bytes.endIndex
                let taken = Array(bytes[index..<end])
                index = end
                events.append(.body(index: completed, taken))
                state = taken.count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - taken.count)
            case .chunkSize, .chunkDataEnd, .trailers:
                line.append(bytes[index])
                index = bytes.index(after: index)
                guard line.count <= 4096 else { throw .malformed("a chunk line over 4 KiB") }
                if line.count >= 2, line.suffix(2).elementsEqual([13, 10]) { try lineEnded(&events) }
            }
        }
        return events
    }

    private mutating func headEnded(_ events: inout [Event]) throws(Failure) {
        let text = String(decoding: head.dropLast(4), as: UTF8.self)
        head = []
        let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        let parts = lines[0].split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]), (100...599).contains(code)
        else { throw .malformed("status line \"\(lines[0].prefix(80))\"") }
        if code < 200 { return }  // an interim answer: the real one follows
        status = code
        var length: Int?
        var chunked = false
        for field in lines.dropFirst() {
            guard let colon = field.firstIndex(of: ":") else { throw .malformed("field line \"\(field.prefix(80))\"") }
            let name = field[..<colon].lowercased()
            let value = field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" {
                guard let parsed = Int(value), parsed >= 0, length == nil || length == parsed else {
                    throw .malformed("Content-Length \"\(value.prefix(40))\"")
                }
                length = parsed
            } else if name == "transfer-encoding" {
                chunked =
                    value.lowercased().split(separator: ",").last?.trimmingCharacters(in: .whitespaces)
                    == "chunked"
            }
        }
        if chunked {
            state = .chunkSize
        } else if let length {
            state = .fixed(remaining: length)
            if length == 0 { complete(&events) }
        } else if code == 204 || code == 304 {
            complete(&events)
        } else {
            throw .malformed("an answer with neither Content-Length nor chunked framing (status \(code))")
        }
    }

    private mutating func lineEnded(_ events: inout [Event]) throws(Failure) {
        let text = String(decoding: line.dropLast(2), as: UTF8.self)
        line = []
        switch state {
        case .chunkSize:
            let size = text.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) }
            guard let size, let count = Int(size, radix: 16), count >= 0 else {
                throw .malformed("chunk size \"\(text.prefix(40))\"")
            }
            state = count == 0 ? .trailers : .chunkData(remaining: count)
        case .chunkDataEnd:
            guard text.isEmpty else { throw .malformed("bytes after a chunk's data") }
            state = .chunkSize
        default:  // trailers: an empty line ends them
            if text.isEmpty { complete(&events) }
        }
    }

    private mutating func complete(_ events: inout [Event]) {
        events.append(.complete(index: completed, status: status))
        completed += 1
        state = .head
    }
}
