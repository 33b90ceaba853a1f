import Foundation
import Yams

/// A pair's config file: YAML, read through Yams' node tree so that every key and value keeps
/// its line and column for the errors. The schema is `SettingKey`'s table: top-level keys
/// (`name`, `image`, `metrics`) and sections of them (`network:`, `guest:`, `health:`, `log:`,
/// `ports:`); contrib/ftvm-example.yaml shows all of it. Reading checks each value's type
/// and makes nothing; `PairSettings.resolve()` then checks ranges and cross-dependencies.
public enum PairConfigFile {
    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(ConfigError) -> PairSettings {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason =
                FileManager.default.fileExists(atPath: path)
                ? "\((error as NSError).localizedDescription) (is it readable UTF-8 text?)"
                : "no such file"
            throw .unreadableFile(path: path, reason: reason)
        }
        return try parse(text, path: path)
    }

    /// The settings in `text`; `path` names the file in errors. An empty file sets nothing.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> PairSettings {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw syntaxError(error, path: path)
        }
        guard let root else { return PairSettings() }
        guard case .mapping(let mapping) = root else {
            throw badShape(root, path: path, problem: "the file must be a mapping of keys (name:, image:, network:, …)")
        }
        var settings = PairSettings()
        try read(mapping, section: nil, path: path, into: &settings)
        return settings
    }

    /// The sections of the schema, in the order the docs list them.
    static let sections: [String] = {
        var seen: [String] = []
        for key in SettingKey.allCases {
            if let section = key.section, !seen.contains(section) { seen.append(section) }
        }
        return seen
    }()

    private static func read(
        _ mapping: Node.Mapping, section: String?, path: String, into settings: inout PairSettings
    ) throws(ConfigError) {
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                throw badShape(keyNode, path: path, problem: "a key must be a plain word")
            }
            let name = scalar.string
            if section == nil, sections.contains(name) {
                guard case .mapping(let inner) = value else {
                    throw badShape(
                        value, path: path,
                        problem: "\(name): must be a mapping of keys (\(keys(in: name).joined(separator: ", ")))")
                }
                try read(inner, section: name, path: path, into: &settings)
                continue
            }
            let fullName = section.map { "\($0).\(name)" } ?? name
            guard let key = SettingKey(rawValue: fullName) else {
                let (line, column) = position(of: keyNode)
                let valid = section.map { keys(in: $0) } ?? (keys(in: nil) + sections)
                throw .unknownKey(
                    path: path, line: line, column: column, key: fullName,
                    suggestion: suggestion(for: name, section: section, valid: valid), valid: valid)
            }
            let (line, column) = position(of: value.mark == nil ? keyNode : value)
            let origin = SettingOrigin.file(path: path, line: line, column: column)
            settings.set(key, try settingValue(value, key: key, origin: origin), from: origin)
        }
    }

    /// The node as the value `key` takes; a value of another type is an error at its position.
    private static func settingValue(
        _ node: Node, key: SettingKey, origin: SettingOrigin
    ) throws(ConfigError)
        -> SettingValue
    {
        switch key.kind {
        case .integer:
            if node.tagName == .int, let value = node.int { return .integer(value) }
            throw .invalidSetting(key: key, origin: origin, reason: "must be an integer, not \(describe(node))")
        case .text:
            if case .scalar(let scalar) = node, node.tagName != .null { return .text(scalar.string) }
            throw .invalidSetting(key: key, origin: origin, reason: "must be a string, not \(describe(node))")
        case .ports:
            if node.tagName == .str, node.string == "none" { return .ports([]) }
            if case .sequence(let items) = node {
                var ports: [Int] = []
                for item in items {
                    guard item.tagName == .int, let port = item.int else {
                        throw .invalidSetting(
                            key: key, origin: origin,
                            reason: "must be a list of ports like [80, 8080] or 'none'; \(describe(item)) is not a port"
                        )
                    }
                    ports.append(port)
                }
                return .ports(ports)
            }
            throw .invalidSetting(
                key: key, origin: origin,
                reason: "must be a list of ports like [80, 8080] or 'none', not \(describe(node))")
        case .portMaps:
            // The scalars' own text: YAML 1.1 would read an unquoted 443:8081 as a base-60 number.
            if case .scalar(let scalar) = node, node.tagName != .null { return .text(scalar.string) }
            if case .sequence(let items) = node {
                var maps: [String] = []
                for item in items {
                    guard case .scalar(let scalar) = item else {
                        throw .invalidSetting(
                            key: key, origin: origin,
                            reason:
                                "must be a list of PUBLIC:GUEST ports like ['443:8081']; \(describe(item)) is not one")
                    }
                    maps.append(scalar.string)
                }
                return .text(maps.joined(separator: ","))
            }
            throw .invalidSetting(
                key: key, origin: origin,
                reason: "must be a list of PUBLIC:GUEST ports like ['443:8081'], not \(describe(node))")
        }
    }

    /// A node as an error shows it: its YAML type and, for a scalar, its text.
    private static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            switch node.tagName {
            case .null: "an empty value"
            case .int: "the integer \(scalar.string)"
            case .float: "the number \(scalar.string)"
            case .bool: "the boolean \(scalar.string)"
            default: "the string '\(scalar.string)'"
            }
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// The keys a section (nil: the top level) holds.
    static func keys(in section: String?) -> [String] {
        SettingKey.allCases.filter { $0.section == section }.map(\.leaf)
    }

    /// The valid key nearest to a misspelt one: at most a third of its letters (and at least
    /// two) apart at the same level; else the same word in another section (`tick-ms` at the
    /// top level means `health.tick-ms`).
    static func suggestion(for name: String, section: String?, valid: [String]) -> String? {
        let limit = max(2, name.count / 3)
        let nearest = valid.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 }
        if let (candidate, distance) = nearest, distance <= limit {
            return section.map { "\($0).\(candidate)" } ?? candidate
        }
        let elsewhere = SettingKey.allCases.map { ($0, editDistance(name, $0.leaf)) }.min { $0.1 < $1.1 }
        if let (key, distance) = elsewhere, distance <= limit, key.section != section {
            return key.rawValue
        }
        return nil
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    private static func badShape(_ node: Node, path: String, problem: String) -> ConfigError {
        let (line, column) = position(of: node)
        return .badFile(path: path, line: line, column: column, problem: problem)
    }

    /// Where a node starts (1-based); 0:0 for a node Yams made without a mark.
    private static func position(of node: Node) -> (line: Int, column: Int) {
        (node.mark?.line ?? 0, node.mark?.column ?? 0)
    }

    /// Yams' errors carry libyaml's problem and position; keep both.
    private static func syntaxError(_ error: any Error, path: String) -> ConfigError {
        switch error as? YamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return .badFile(path: path, line: mark.line, column: mark.column, problem: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return .badFile(
                path: path, line: context.mark.line, column: context.mark.column,
                problem: "key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) given twice")
        case .reader(let problem, let offset, _, _):
            return .badFile(
                path: path, line: 0, column: 0, problem: "not readable as text at byte \(offset ?? 0): \(problem)")
        default:
            return .badFile(path: path, line: 0, column: 0, problem: "not valid YAML: \(error)")
        }
    }
}

extension Node {
    /// The resolved tag's name (`Tag.name` is internal to Yams; its raw value is not).
    fileprivate var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}
