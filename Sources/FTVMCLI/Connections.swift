import ArgumentParser
import FTVMController
import Foundation

struct Connections: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the client connections in the FT-TCP log, with their stream offsets.")

    @OptionGroup var pair: PairOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        let connections = try send(ControlRequest.connections, pair: pair).connections ?? []
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(connections), as: UTF8.self))
            return
        }
        print("\(connections.count) logged connection(s)")
        for connection in connections {
            let acked = connection.serverBytesAcked.map(String.init) ?? "-"
            let sent = connection.serverBytesSent.map(String.init) ?? "-"
            let start = "replay from \(connection.replayStartClientOffset)/\(connection.replayStartServerOffset)"
            // A relay server's own connection: the guest's end first, the end server's bytes as
            // the logged "client" bytes.
            let ends =
                connection.guestInitiated
                ? "guest \(connection.server)\(connection.servingPort.map { " (serving port \($0))" } ?? "") -> end server \(connection.client)"
                : "\(connection.client) -> \(connection.server)"
            let logged = connection.guestInitiated ? "end server bytes" : "client bytes"
            let answered = connection.guestInitiated ? "guest bytes" : "server bytes"
            print(
                "  \(ends)  \(connection.state)  \(connection.protection)  \(logged) \(connection.clientBytesLogged)\(connection.clientFIN ? "+FIN" : "") (\(connection.clientBytesHeld) held, \(start))  \(answered) acked \(acked) / sent \(sent)\(connection.serverFIN ? "+FIN" : "")  \(connection.framing)\(connection.replayedSequenceDelta == nil ? "" : "  replayed")"
            )
        }
    }
}
