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
        let connections = try send(ControlRequest(.connections), pair: pair).connections ?? []
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
            print(
                "  \(connection.client) -> \(connection.server)  \(connection.state)  \(connection.protection)  client bytes \(connection.clientBytesLogged)\(connection.clientFIN ? "+FIN" : "") (\(connection.clientBytesHeld) held, \(start))  server bytes acked \(acked) / sent \(sent)\(connection.serverFIN ? "+FIN" : "")  \(connection.framing)\(connection.replayedSequenceDelta == nil ? "" : "  replayed")"
            )
        }
    }
}
