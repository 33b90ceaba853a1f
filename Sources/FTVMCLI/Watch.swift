import ArgumentParser
import FTVMController
import FTVMSystem
import Foundation
import Synchronization

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A live view of the pair, refreshed every second (Ctrl-C to quit).",
        discussion: """
            Shows the guests with their roles, states and heartbeat ages, the connections \
            protected and unprotected, the log's fill and the last recovery's phases as a bar. \
            On a terminal it uses the alternate screen and puts the terminal back as it was on \
            Ctrl-C, SIGTERM or the end of --count; otherwise it prints each frame as plain lines. \
            While the daemon is away it says so and keeps asking.
            """)

    @OptionGroup var pair: PairOptions

    @Option(name: .long, help: "Stop after this many frames (default: until Ctrl-C or SIGTERM).")
    var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1, not \(count)") }
    }

    func run() throws {
        let config = try pair.config()
        let signals = SignalWaiter([SIGINT, SIGTERM, SIGWINCH])
        defer { signals.cancel() }
        let screen = try? TerminalScreen(fd: STDOUT_FILENO)
        defer { screen?.restore() }
        var frames = 0
        var stoppedBy: Int32?
        while stoppedBy == nil {
            let view = WatchView(
                pair: config.name, source: Self.fetch(config), clock: Self.clock(),
                width: TerminalScreen.size(of: STDOUT_FILENO)?.columns ?? 80)
            if let screen {
                try? screen.draw(view.lines(), rows: TerminalScreen.size(of: STDOUT_FILENO)?.rows ?? 24)
            } else {
                print(view.lines().joined(separator: "\n") + "\n")
                fflush(nil)
            }
            frames += 1
            if let count, frames >= count { break }
            // Sleep until the next second; a resize redraws at once, Ctrl-C or SIGTERM ends.
            let deadline = Date().addingTimeInterval(1)
            while stoppedBy == nil, let signal = signals.wait(until: deadline), signal != SIGWINCH {
                stoppedBy = signal
            }
        }
        if let stoppedBy {
            screen?.restore()
            // The shell's convention for a command ended by a signal.
            throw ExitCode(128 + stoppedBy)
        }
    }

    /// The daemon's status, or why there is none; never throws, so a daemon that goes away
    /// (or is restarting) is shown, not fatal.
    static func fetch(_ config: PairConfig) -> WatchView.Source {
        do {
            let response = try ControlClient.send(ControlRequest.status, to: config, timeoutSeconds: 2)
            guard let status = response.status else {
                return .unreachable(response.error ?? "the daemon sent no status")
            }
            return .status(status)
        } catch {
            return .unreachable("\(error)")
        }
    }

    static func clock() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: Date())
    }
}

/// Signals delivered as events a loop waits for (through Dispatch, so no code runs in a signal
/// handler): while it listens, the signals' default actions are off. Used by one thread.
final class SignalWaiter {
    private final class Mailbox: Sendable {
        let pending = Mutex<[Int32]>([])
        let arrived = DispatchSemaphore(value: 0)
    }

    private let numbers: [Int32]
    private let sources: [any DispatchSourceSignal]
    private let mailbox = Mailbox()

    init(_ numbers: [Int32]) {
        self.numbers = numbers
        let mailbox = self.mailbox
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                mailbox.pending.withLock { $0.append(number) }
                mailbox.arrived.signal()
            }
            source.resume()
            return source
        }
    }

    /// The next signal that arrives before `deadline`, or nil when none does.
    func wait(until deadline: Date) -> Int32? {
        let timeout = DispatchTime.now() + max(0, deadline.timeIntervalSinceNow)
        guard mailbox.arrived.wait(timeout: timeout) == .success else { return nil }
        return mailbox.pending.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    /// Stops listening and gives the signals their default actions back.
    func cancel() {
        sources.forEach { $0.cancel() }
        numbers.forEach { signal($0, SIG_DFL) }
    }
}
