import XCTest

@testable import FTVMController

extension XCTestCase {
    /// Parses `text` as the file /etc/ftvm/t.yaml and resolves it.
    func resolveSettings(_ text: String) throws -> ResolvedSettings {
        try PairConfigFile.parse(text, path: "/etc/ftvm/t.yaml").resolve()
    }

    /// The error `text` produces, as the user reads it.
    func settingsFailure(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let settings = try resolveSettings(text)
            XCTFail("expected an error, got \(settings)", file: file, line: line)
            return ""
        } catch {
            return (error as? ConfigError)?.description ?? "not a ConfigError: \(error)"
        }
    }
}
