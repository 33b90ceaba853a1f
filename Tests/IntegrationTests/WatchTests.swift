import Foundation
import XCTest

/// `ftvm watch` on a real terminal: tmux runs a shell in a pane, the test types into it and reads
/// the screen back (`tmux capture-pane`), so the alternate screen, the cursor and the termios
/// are the terminal's own, not what the program says it did. One pair, one bring-up.
final class WatchTests: PairTestCase {
    override var pair: String { "hwat" }

    private static let prompt = "watch-test$"

    func testWatchFollowsThePairAndLeavesTheTerminalAsItWas() throws {
        let tmux = try Tmux(width: 100, height: 40, prompt: Self.prompt)
        defer { tmux.stop() }
        let before = try tmux.stty()

        // Started before the daemon: says so, keeps asking, and shows the pair once it is up.
        tmux.type("\(Harness.ftvm) watch --name \(pair)")
        try tmux.waitFor("daemon not running") { $0.contains("daemon not running") }
        try Harness.ftvm(["up", "--name", pair])
        let protected = try tmux.waitFor("the pair protected") { screen in
            screen.contains("PROTECTED  phase protected")
                && screen.contains("ftvm-\(self.pair)-1  primary  running")
                && screen.contains("ftvm-\(self.pair)-2  backup   paused")
        }
        XCTAssertTrue(protected.contains("last recovery  none"), protected)
        XCTAssertEqual(tmux.flags(), Tmux.Flags(alternateScreen: true, cursorVisible: false))

        // A narrower window redraws at once within its width (SIGWINCH).
        tmux.resize(width: 60)
        let narrow = try tmux.waitFor("a 60-column frame") { screen in
            screen.split(separator: "\n").first.map { $0.count == 60 && $0.hasPrefix("ftvm watch: pair") } == true
        }
        XCTAssertTrue(narrow.split(separator: "\n").allSatisfy { $0.count <= 60 }, narrow)
        tmux.resize(width: 100)

        // A fault: the recovery appears with its phases as a bar, and protection comes back.
        try Harness.ftvm(["inject", "kernel-panic", "--name", pair])
        let recovered = try tmux.waitFor("the recovery bar with re-protection", seconds: 120) { screen in
            screen.contains("cause: guest kernel panic") && screen.contains("  total    [")
                && screen.contains("E re-protect") && screen.contains("PROTECTED  phase protected")
        }
        let bar = try XCTUnwrap(recovered.split(separator: "\n").first { $0.hasPrefix("  takeover [") })
        for letter in ["F", "S", "R", "P"] {
            XCTAssertTrue(bar.contains(letter), "the takeover bar has a \(letter) segment: \(bar)")
        }

        // Ctrl-C: back to the prompt, main screen, cursor shown, termios as before.
        tmux.keys("C-c")
        try assertBackAtThePrompt(tmux, before: before)

        // SIGTERM does the same.
        tmux.type("\(Harness.ftvm) watch --name \(pair)")
        try tmux.waitFor("the view again") { $0.contains("PROTECTED  phase") }
        let watcher = try tmux.childOfShell()
        kill(watcher, SIGTERM)
        try assertBackAtThePrompt(tmux, before: before)

        // And so does the end of --count.
        tmux.type("\(Harness.ftvm) watch --name \(pair) --count 2; echo watch-exit=$?")
        try tmux.waitFor("the end of --count") { $0.contains("watch-exit=0") }
        try assertBackAtThePrompt(tmux, before: before)
    }

    /// Not on a terminal: plain frames, no escape sequences, one per refresh.
    func testPlainFramesWhenStdoutIsNotATerminal() throws {
        let output = try Harness.run([Harness.ftvm, "watch", "--name", pair, "--count", "2"])
        XCTAssertEqual(output.status, 0, output.combined)
        XCTAssertFalse(output.stdout.contains("\u{1B}"), output.stdout)
        XCTAssertEqual(output.stdout.components(separatedBy: "ftvm watch: pair \(pair)").count - 1, 2, output.stdout)
        XCTAssertTrue(output.stdout.contains("daemon not running"), output.stdout)
    }

    private func assertBackAtThePrompt(
        _ tmux: Tmux, before: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        try tmux.waitFor("the shell prompt", file: file, line: line) { screen in
            screen.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) == Self.prompt } == true
        }
        XCTAssertEqual(tmux.flags(), Tmux.Flags(alternateScreen: false, cursorVisible: true), file: file, line: line)
        XCTAssertEqual(try tmux.stty(), before, "stty -a differs after ftvm watch", file: file, line: line)
    }
}

private struct ScreenTimeout: Error {
    var what: String
}

/// A private tmux server with one pane running a plain bash.
private struct Tmux {
    struct Flags: Equatable {
        var alternateScreen: Bool
        var cursorVisible: Bool
    }

    let socket = "ftvm-test-\(getpid())"
    let prompt: String

    init(width: Int, height: Int, prompt: String) throws {
        self.prompt = prompt
        // The server this starts would keep every fd it inherits, among them the socket
        // Foundation's Process watches to see a child end: close them all first, or the start
        // never returns.
        let command = [
            "tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "\(width)", "-y",
            "\(height)", "env", "PS1='\(prompt) '", "bash", "--norc", "--noprofile",
        ]
        let started = try Harness.run([
            "bash", "-c",
            "for fd in $(ls /proc/$$/fd); do [ $fd -gt 2 ] && eval \"exec $fd>&-\"; done; exec "
                + command.joined(separator: " ") + " </dev/null >/dev/null",
        ])
        guard started.status == 0 else {
            throw TestFailure(
                description: "tmux could not start a session (scripts/setup.sh installs tmux): \(started.combined)")
        }
        try waitFor("the first prompt") { $0.contains(prompt) }
    }

    func stop() { _ = try? Harness.run(["tmux", "-L", socket, "kill-server"]) }

    @discardableResult
    private func tmux(_ arguments: [String]) -> String {
        (try? Harness.run(["tmux", "-L", socket] + arguments).stdout) ?? ""
    }

    /// Types `line` and Enter into the pane.
    func type(_ line: String) {
        tmux(["send-keys", "-t", "t", "-l", line])
        keys("Enter")
    }

    func keys(_ key: String) { tmux(["send-keys", "-t", "t", key]) }

    func resize(width: Int) { tmux(["resize-window", "-t", "t", "-x", "\(width)"]) }

    /// The visible screen, trailing blank lines dropped.
    func screen() -> String {
        var lines = tmux(["capture-pane", "-p", "-t", "t"]).split(separator: "\n", omittingEmptySubsequences: false)
        while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    func flags() -> Flags {
        let words = tmux(["display-message", "-p", "-t", "t", "#{alternate_on} #{cursor_flag}"]).split(separator: " ")
        return Flags(alternateScreen: words.first == "1", cursorVisible: words.last?.hasPrefix("1") == true)
    }

    /// `stty -a` as the pane's shell sees its terminal.
    func stty() throws -> String {
        let file = NSTemporaryDirectory() + "ftvm-watch-stty-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        type("stty -a > \(file)")
        try waitFor("stty") { _ in
            FileManager.default.fileExists(atPath: file)
                && (try? String(contentsOfFile: file, encoding: .utf8))?.contains("speed") == true
        }
        return try String(contentsOfFile: file, encoding: .utf8)
    }

    /// The pid of the program the pane's shell runs in the foreground.
    func childOfShell() throws -> pid_t {
        let shell = tmux(["display-message", "-p", "-t", "t", "#{pane_pid}"]).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let children = try Harness.run(["pgrep", "-P", shell]).stdout.split(separator: "\n").compactMap { pid_t($0) }
        return try XCTUnwrap(children.first, "no program runs in the pane's shell \(shell)")
    }

    /// Polls the screen until `condition` holds; fails with the last screen after `seconds`.
    @discardableResult
    func waitFor(
        _ what: String, seconds: Double = 60, file: StaticString = #filePath, line: UInt = #line,
        _ condition: (String) -> Bool
    ) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            last = screen()
            if condition(last) { return last }
            usleep(200_000)
        }
        XCTFail("no \(what) on the screen after \(seconds) s; it shows:\n\(last)", file: file, line: line)
        throw ScreenTimeout(what: what)
    }
}
