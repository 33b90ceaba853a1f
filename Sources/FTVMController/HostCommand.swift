import Foundation

/// Runs host tools (`ip`) for the control plane. Never on the packet path.
enum HostCommand {
    struct Failure: Error, CustomStringConvertible {
        var command: [String]
        var status: Int32
        var output: String
        var description: String {
            "`\(command.joined(separator: " "))` failed (exit \(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
    }

    /// Runs `arguments` (found on PATH) and returns its standard output; throws with its output
    /// when it exits non-zero.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(command: arguments, status: process.terminationStatus, output: output)
        }
        return output
    }
}
