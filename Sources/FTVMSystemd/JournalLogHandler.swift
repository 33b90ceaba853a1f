import FTVMSystem
import Foundation
import Logging
import SystemPackage

/// A swift-log handler that writes structured entries to the systemd journal over its native
/// socket: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE/CODE_LINE/CODE_FUNC, FTVM_LOGGER (the
/// logger's label), and each metadata key as an upper-case `FTVM_*` field (the daemon's `pair`
/// becomes FTVM_PAIR), so `journalctl FTVM_PAIR=web` selects one pair's entries.
///
/// An entry the socket refuses (journald gone, or a datagram over its size limit) is written
/// to standard error as a line instead, which under systemd is the journal's stream anyway.
public struct JournalLogHandler: LogHandler {
    /// Where journald listens for native-protocol datagrams.
    public static let defaultSocketPath = "/run/systemd/journal/socket"

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let identifier: String
    private let sink: Sink

    public init(label: String, identifier: String = "ftvm", socketPath: String = Self.defaultSocketPath) throws(Errno) {
        self.label = label
        self.identifier = identifier
        sink = Sink(socket: try UnixDatagram(), path: socketPath)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let entry = Self.entry(
            event: event, metadata: metadata, label: label, identifier: identifier)
        do {
            try sink.socket.send(entry.encoded, to: sink.path)
        } catch {
            let line = "\(event.level) \(label): \(event.message) \(event.metadata ?? [:]) (journal: \(error))\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    /// The entry for one event: the handler's metadata, overridden by the event's.
    static func entry(event: LogEvent, metadata: Logger.Metadata, label: String, identifier: String) -> JournalEntry {
        var fields = [
            JournalEntry.Field("MESSAGE", "\(event.message)"),
            JournalEntry.Field("PRIORITY", "\(priority(event.level))"),
            JournalEntry.Field("SYSLOG_IDENTIFIER", identifier),
            JournalEntry.Field("CODE_FILE", event.file),
            JournalEntry.Field("CODE_LINE", "\(event.line)"),
            JournalEntry.Field("CODE_FUNC", event.function),
            JournalEntry.Field("FTVM_LOGGER", label),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            fields.append(JournalEntry.Field(JournalEntry.fieldName(key, prefix: "FTVM_"), "\(merged[key]!)"))
        }
        return JournalEntry(fields: fields)
    }

    /// syslog(3) priorities, as journald reads PRIORITY.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The socket every copy of the handler shares (a LogHandler is a value; the fd is not).
    private final class Sink: Sendable {
        let socket: UnixDatagram
        let path: String
        init(socket: UnixDatagram, path: String) {
            self.socket = socket
            self.path = path
        }
    }
}
