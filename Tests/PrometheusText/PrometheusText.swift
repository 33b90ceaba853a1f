import Foundation

/// A strict reader of the Prometheus text exposition format (version 0.0.4), written for the
/// tests: it checks what a scraper relies on (metric and label name syntax, escapes, one HELP
/// and one TYPE per family before its samples, contiguous families, histogram series) and
/// returns the families with their samples.
public struct Exposition: Sendable {
    public struct Sample: Sendable, Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public struct Family: Sendable {
        public var name: String
        public var type: String?
        public var help: String?
        public var samples: [Sample] = []
    }

    public struct Malformed: Error, CustomStringConvertible {
        public var line: Int
        public var why: String
        public var description: String { "line \(line): \(why)" }
    }

    public private(set) var families: [String: Family] = [:]

    public init(_ text: String) throws {
        var current: String?
        var finished: Set<String> = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard text.isEmpty || text.hasSuffix("\n") else { throw Malformed(line: lines.count, why: "no final newline") }
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            let line = String(raw)
            func fail(_ why: String) -> Malformed { Malformed(line: number, why: why) }
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            // The family a line belongs to; a family must not come back once another began.
            func enter(_ family: String) throws {
                guard family != current else { return }
                if let current { finished.insert(current) }
                guard !finished.contains(family) else { throw fail("family \(family) is not contiguous") }
                current = family
            }
            if line.hasPrefix("#") {
                let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                guard words.count >= 3, words[0] == "#", words[1] == "HELP" || words[1] == "TYPE" else { continue }
                let name = words[2]
                guard Self.isMetricName(name) else { throw fail("bad metric name '\(name)'") }
                try enter(name)
                var family = families[name] ?? Family(name: name)
                let rest = words.count > 3 ? words[3] : ""
                if words[1] == "HELP" {
                    guard family.help == nil else { throw fail("second HELP for \(name)") }
                    do { family.help = try Self.unescape(rest, quotes: false) } catch { throw fail(error.text) }
                } else {
                    guard family.type == nil else { throw fail("second TYPE for \(name)") }
                    guard family.samples.isEmpty else { throw fail("TYPE for \(name) after its samples") }
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(rest) else {
                        throw fail("unknown type '\(rest)'")
                    }
                    family.type = rest
                }
                families[name] = family
                continue
            }
            let sample: Sample
            do { sample = try Self.sample(line) } catch { throw fail(error.text) }
            let family = familyName(of: sample.name)
            try enter(family)
            var entry = families[family] ?? Family(name: family)
            if entry.samples.contains(where: { $0.name == sample.name && $0.labels == sample.labels }) {
                throw fail("duplicate series \(sample.name)\(sample.labels)")
            }
            entry.samples.append(sample)
            families[family] = entry
        }
        for family in families.values where family.type == "histogram" {
            try Self.checkHistogram(family)
        }
    }

    /// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` series
    /// belong to the family declared without the suffix.
    private func familyName(of sample: String) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where sample.hasSuffix(suffix) {
            let base = String(sample.dropLast(suffix.count))
            if families[base]?.type == "histogram" { return base }
        }
        return sample
    }

    /// The value of the one sample named `name` whose labels include `labels`.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matches = families.values.flatMap(\.samples).filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
        return matches.count == 1 ? matches[0].value : nil
    }

    // MARK: Syntax

    static func isMetricName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCIILetter || first == "_" || first == ":" else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" || $0 == ":" }
    }

    static func isLabelName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }

    /// `name{label="value",...} value [timestamp]`.
    static func sample(_ line: String) throws(Why) -> Sample {
        var rest = Substring(line)
        let name = String(rest.prefix { $0 != "{" && $0 != " " })
        guard isMetricName(name) else { throw Why("bad metric name '\(name)'") }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let label = String(rest.prefix { $0 != "=" })
                guard isLabelName(label) else { throw Why("bad label name '\(label)'") }
                rest = rest.dropFirst(label.count)
                guard rest.hasPrefix("=\"") else { throw Why("label \(label) has no quoted value") }
                rest = rest.dropFirst(2)
                var value = ""
                var escaped = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        switch character {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw Why("bad escape \\\(character) in label \(label)")
                        }
                        escaped = false
                    } else if character == "\\" {
                        escaped = true
                    } else if character == "\"" {
                        break
                    } else {
                        value.append(character)
                    }
                    if rest.isEmpty && character != "\"" { throw Why("unterminated value of label \(label)") }
                }
                guard labels.updateValue(value, forKey: label) == nil else {
                    throw Why("label \(label) given twice")
                }
                if rest.first == "," {
                    rest = rest.dropFirst()
                } else if rest.first != "}" {
                    throw Why("expected ',' or '}' after label \(label)")
                }
            }
            rest = rest.dropFirst()
        }
        let fields = rest.split(separator: " ", omittingEmptySubsequences: true)
        guard rest.first == " ", (1...2).contains(fields.count) else {
            throw Why("expected ' VALUE [TIMESTAMP]' after \(name)")
        }
        guard let value = number(String(fields[0])) else { throw Why("bad value '\(fields[0])'") }
        if fields.count == 2, Int64(fields[1]) == nil { throw Why("bad timestamp '\(fields[1])'") }
        return Sample(name: name, labels: labels, value: value)
    }

    /// A Go-style float: decimal or exponent notation, `+Inf`, `-Inf`, `NaN`.
    static func number(_ text: String) -> Double? {
        switch text {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default:
            guard text.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }) else { return nil }
            return Double(text)
        }
    }

    static func unescape(_ text: String, quotes: Bool) throws(Why) -> String {
        var out = ""
        var escaped = false
        for character in text {
            if escaped {
                switch character {
                case "\\": out.append("\\")
                case "n": out.append("\n")
                case "\"" where quotes: out.append("\"")
                default: throw Why("bad escape \\\(character)")
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                out.append(character)
            }
        }
        if escaped { throw Why("a lone backslash ends the text") }
        return out
    }

    /// Per label set: buckets with `le`, cumulative, ending at `+Inf` equal to `_count`, and a `_sum`.
    static func checkHistogram(_ family: Family) throws {
        let fail = { (why: String) in Malformed(line: 0, why: "histogram \(family.name): \(why)") }
        var series: [[String: String]: [(le: Double, count: Double)]] = [:]
        var counts: [[String: String]: Double] = [:]
        var sums: Set<[String: String]> = []
        for sample in family.samples {
            switch sample.name {
            case family.name + "_bucket":
                guard let text = sample.labels["le"], let le = number(text) else { throw fail("bucket without le") }
                var labels = sample.labels
                labels["le"] = nil
                series[labels, default: []].append((le, sample.value))
            case family.name + "_count": counts[sample.labels] = sample.value
            case family.name + "_sum": sums.insert(sample.labels)
            default: throw fail("unexpected series \(sample.name)")
            }
        }
        guard Set(series.keys) == Set(counts.keys), Set(counts.keys) == sums else {
            throw fail("label sets of _bucket, _count and _sum differ")
        }
        for (labels, buckets) in series {
            let sorted = buckets.sorted { $0.le < $1.le }
            guard sorted.last?.le == .infinity else { throw fail("no +Inf bucket for \(labels)") }
            for (lower, upper) in zip(sorted, sorted.dropFirst()) where upper.count < lower.count {
                throw fail("buckets not cumulative for \(labels)")
            }
            guard sorted.last?.count == counts[labels] else {
                throw fail("+Inf bucket differs from _count for \(labels)")
            }
        }
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// Why a line is malformed, before its line number is known.
struct Why: Error {
    var text: String
    init(_ text: String) { self.text = text }
}
