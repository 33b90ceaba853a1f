/// One line of the agent's services file: `NAME PORT COMMAND ARGS...` for a program the agent
/// starts itself, or `NAME PORT unit:UNIT` for a systemd unit it watches (docs/image.md, "Disk
/// guest").
public struct ServiceDefinition: Equatable, Sendable {
    /// How the service runs.
    public enum Launch: Equatable, Sendable {
        /// The agent spawns this program (an absolute path, then its arguments) and is its parent.
        case command([String])
        /// systemd runs this unit (e.g. `nginx.service`); the agent watches its cgroup.
        case unit(String)
    }

    public var name: String
    public var port: UInt16
    public var launch: Launch

    public init(name: String, port: UInt16, launch: Launch) {
        self.name = name
        self.port = port
        self.launch = launch
    }

    static let unitPrefix = "unit:"

    /// Parses the services file; `#` starts a comment. Bad lines are errors, never skipped: an
    /// image that silently runs fewer services than it lists would be "ready" while broken.
    public static func parse(_ text: String) throws(ServiceFileError) -> [ServiceDefinition] {
        var services: [ServiceDefinition] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.prefix { $0 != "#" }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            let error = ServiceFileError(line: number + 1, text: String(rawLine))
            guard fields.count >= 3, let port = UInt16(fields[1]), port > 0 else { throw error }
            let launch: Launch
            if fields[2].hasPrefix(unitPrefix) {
                let unit = String(fields[2].dropFirst(unitPrefix.count))
                guard fields.count == 3, isUnitName(unit) else { throw error }
                launch = .unit(unit)
            } else if fields[2].hasPrefix("/") {
                launch = .command(Array(fields[2...]))
            } else {
                throw error
            }
            services.append(ServiceDefinition(name: fields[0], port: port, launch: launch))
        }
        return services
    }

    /// A unit name systemd accepts as a cgroup directory name and one that stays inside it: a
    /// `.service` unit with no `/` and no leading dot.
    static func isUnitName(_ unit: String) -> Bool {
        unit.hasSuffix(".service") && unit.count > ".service".count && !unit.contains("/") && !unit.hasPrefix(".")
    }
}

public struct ServiceFileError: Error, CustomStringConvertible, Equatable {
    public var line: Int
    public var text: String
    public var description: String {
        "services file line \(line) is not `NAME PORT /ABSOLUTE/COMMAND ARGS...` or `NAME PORT unit:UNIT.service`: \(text)"
    }
}
