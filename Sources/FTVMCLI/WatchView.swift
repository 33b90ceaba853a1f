import FTVMController
import Foundation

/// One frame of `ftvm watch`, drawn from what the daemon answered (or why it did not): a pure
/// function of its inputs, so the layout is tested with golden output. ASCII only, every line
/// at most `width` columns.
struct WatchView {
    enum Source {
        case status(PairStatus)
        /// No answer from the daemon: why (the control client's error).
        case unreachable(String)
    }

    var pair: String
    var source: Source
    /// The wall-clock time of the frame, as shown in its top-right corner.
    var clock: String
    var width: Int

    /// The narrowest layout; a narrower terminal gets it cut at the edge.
    static let minimumWidth = 40

    /// The recovery phases in the order a takeover runs them, each with its letter in the bar
    /// and the name the legend shows.
    static let phaseKeys: [(name: String, letter: Character, label: String)] = RecoveryPhase.takeover.map { phase in
        (phase.rawValue, letters[phase] ?? "?", phase.rawValue)
    }

    private static let letters: [RecoveryPhase: Character] = [
        .fence: "F", .switch: "S", .resume: "R", .boot: "O", .firstPacket: "P", .replay: "Y", .firstByte: "B",
        .reprotected: "E",
    ]

    func lines() -> [String] {
        let columns = max(width, Self.minimumWidth)
        var lines = [Self.spread("ftvm watch: pair \(pair)", clock, columns: columns)]
        switch source {
        case .unreachable(let reason):
            lines +=
                ["", "daemon not running"]
                + Self.wrap(reason.split(separator: " ").map(String.init), columns: columns, indent: "  ", gap: " ")
            lines.append("  retrying every second (Ctrl-C to quit)")
        case .status(let status):
            lines += body(status, columns: columns)
        }
        return lines.map { Self.fit($0, width) }
    }

    private func body(_ status: PairStatus, columns: Int) -> [String] {
        var lines = [
            "\(status.protected ? "PROTECTED" : "NOT PROTECTED")  phase \(status.phase)  recoveries \(status.recoveries)  fence \(status.fence)  daemon pid \(status.daemonPID)",
            "",
        ]
        lines += guestTable(status.guests, columns: columns)
        lines.append("")
        if let log = status.log {
            let protected = log.openConnections - log.unprotectedConnections
            lines.append(
                "connections  \(log.openConnections) open: \(protected) protected, \(log.unprotectedConnections) unprotected (\(log.slotCount) slots)"
            )
            let fill = log.capacityBytes == 0 ? 0 : Double(log.bytesHeld) / Double(log.capacityBytes)
            let text = String(
                format: " %.1f%%  %@ of %@ held", fill * 100, StatusPrinter.bytes(log.bytesHeld),
                StatusPrinter.bytes(log.capacityBytes))
            let barWidth = min(40, max(10, columns - 13 - 36))
            lines.append("log          " + Self.gauge(fill, width: barWidth) + text)
        } else {
            lines.append("connections  (no connection log)")
        }
        lines.append(
            "relay        \(status.relay.framesToGuest) frames to guest, \(status.relay.framesToClients) to clients, \(status.relay.framesDropped) dropped, \(status.relay.framesHeld) held"
        )
        lines.append("")
        lines += recovery(status.lastRecovery, columns: columns)
        if let upgrade = status.upgrade {
            lines.append(
                "last upgrade  \(upgrade.fromVersion) -> \(upgrade.toVersion), \(upgrade.step.rawValue): \(upgrade.drained) drained, \(upgrade.replayed) replayed, \(upgrade.reset) reset"
            )
        }
        return lines
    }

    /// The guests as a table; the rightmost columns go first when the terminal is narrow.
    private func guestTable(_ guests: [GuestStatus], columns: Int) -> [String] {
        guard !guests.isEmpty else { return ["guests       none"] }
        var table: [[String]] = [["guest", "role", "state", "heartbeat", "agent", "image", "services"]]
        for guest in guests {
            table.append([
                guest.domain, guest.role, guest.state, guest.heartbeatAgeMillis.map(Self.age) ?? "-", guest.agent,
                guest.imageVersion, guest.services.map { "\($0.name):\($0.state)" }.joined(separator: " "),
            ])
        }
        for kept in stride(from: table[0].count, through: 3, by: -1) {
            let rows = Self.columns(table.map { Array($0.prefix(kept)) })
            if kept == 3 || rows.allSatisfy({ $0.count <= columns }) { return rows }
        }
        return []
    }

    private func recovery(_ record: RecoveryRecord?, columns: Int) -> [String] {
        guard let record else { return ["last recovery  none"] }
        var lines = ["last recovery  \(record.startedAt)  \(record.failedDomain) -> \(record.newPrimary)"]
        lines.append("  cause: \(record.cause)")
        if let fault = record.injectedFault, let detect = record.detectMillis {
            lines.append("  injected \(fault), detected after \(Self.millis(detect))")
        }
        let phases = record.phases
        if phases.isEmpty {
            lines.append("  phases: none recorded")
        } else {
            // Booting the new backup dwarfs the rest: the takeover gets a bar of its own.
            let takeover = phases.filter { $0.name != RecoveryPhase.reprotected.rawValue }
            if takeover.count < phases.count, !takeover.isEmpty {
                lines += Self.bar("takeover ", takeover, suffix: "", columns: columns)
            }
            lines += Self.bar("total    ", phases, suffix: record.reprotected ? "" : " so far", columns: columns)
            let legend = phases.map {
                "\(Self.letter(of: $0.name)) \(Self.label(of: $0.name)) \(Self.millis($0.millis))"
            }
            lines += Self.wrap(legend, columns: columns, indent: "  ")
        }
        if !record.reprotected {
            lines.append("  re-protection pending")
        }
        if let replay = record.replay {
            lines.append(
                "  replay: \(replay.connections) connections, \(replay.spliced) spliced, \(replay.reset) reset")
        }
        if let error = record.error { lines.append("  error: \(error)") }
        return lines
    }

    // MARK: Layout helpers

    /// `  TITLE[FFSSRRR…] 12.3 ms`: the phases as proportional segments of one line (none
    /// when the line cannot give every phase a cell).
    static func bar(_ title: String, _ phases: [RecoveryRecord.Phase], suffix: String, columns: Int) -> [String] {
        let total = " " + millis(phases.map(\.millis).reduce(0, +)) + suffix
        let width = columns - 4 - title.count - total.count
        guard width >= phases.count else { return [] }
        let cells = segments(phases.map(\.millis), width: width)
        let bar = zip(phases, cells).map { String(repeating: letter(of: $0.0.name), count: $0.1) }
        return ["  " + title + "[" + bar.joined() + "]" + total]
    }

    /// How many of `width` cells each phase gets: every phase at least one, the rest in
    /// proportion to its time (largest remainders), so the cells add up to `width` exactly.
    static func segments(_ millis: [Double], width: Int) -> [Int] {
        guard !millis.isEmpty else { return [] }
        let spare = width - millis.count
        let total = millis.map { max(0, $0) }.reduce(0, +)
        let shares = millis.map {
            total > 0 ? max(0, $0) / total * Double(spare) : Double(spare) / Double(millis.count)
        }
        var cells = shares.map { 1 + Int($0.rounded(.down)) }
        let order = shares.indices.sorted {
            shares[$0] - shares[$0].rounded(.down) > shares[$1] - shares[$1].rounded(.down)
        }
        for index in order.prefix(width - cells.reduce(0, +)) { cells[index] += 1 }
        return cells
    }

    static func letter(of phase: String) -> Character { phaseKeys.first { $0.name == phase }?.letter ?? "#" }

    static func label(of phase: String) -> String { phaseKeys.first { $0.name == phase }?.label ?? phase }

    /// `[#####.....]`: `fraction` of `width` cells filled (at least one when anything is held).
    static func gauge(_ fraction: Double, width: Int) -> String {
        let inner = max(1, width - 2)
        let clamped = min(1, max(0, fraction))
        let filled = clamped > 0 ? max(1, Int((clamped * Double(inner)).rounded())) : 0
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: inner - filled) + "]"
    }

    static func millis(_ value: Double) -> String {
        switch value {
        case ..<10: String(format: "%.2f ms", value)
        case ..<100: String(format: "%.1f ms", value)
        default: String(format: "%.0f ms", value)
        }
    }

    /// A heartbeat age: milliseconds under a second, then seconds.
    static func age(_ millis: Double) -> String {
        switch millis {
        case ..<1000: String(format: "%.0f ms", millis)
        case ..<100_000: String(format: "%.1f s", millis / 1000)
        default: String(format: "%.0f s", millis / 1000)
        }
    }

    /// Left-aligned columns, two spaces apart, indented by two.
    static func columns(_ rows: [[String]]) -> [String] {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            var line = " "
            for (column, cell) in row.enumerated() {
                line +=
                    " "
                    + (column == row.count - 1
                        ? cell : cell.padding(toLength: widths[column] + 1, withPad: " ", startingAt: 0))
            }
            return String(line.reversed().drop { $0 == " " }.reversed())
        }
    }

    /// `items` on as few lines as fit in `columns`, `gap` apart.
    static func wrap(_ items: [String], columns: Int, indent: String, gap: String = "   ") -> [String] {
        var lines: [String] = []
        var line = indent
        for item in items {
            if line != indent, line.count + gap.count + item.count > columns {
                lines.append(line)
                line = indent
            }
            line += (line == indent ? "" : gap) + item
        }
        lines.append(line)
        return lines
    }

    /// `left`, then `right` at the right edge when both fit.
    static func spread(_ left: String, _ right: String, columns: Int) -> String {
        let gap = columns - left.count - right.count
        return gap >= 2 ? left + String(repeating: " ", count: gap) + right : left
    }

    /// `line` cut to `width` columns, ending in "..." when cut.
    static func fit(_ line: String, _ width: Int) -> String {
        guard line.count > width else { return line }
        return width > 3 ? String(line.prefix(width - 3)) + "..." : String(line.prefix(max(0, width)))
    }
}
