import CFTVMShim
import Glibc
import SystemPackage

/// A full-screen view on a terminal: the alternate screen, a hidden cursor, and no echo of
/// keys typed meanwhile. `restore()` (or `deinit`) puts the terminal back exactly as it was
/// found: the saved termios, the cursor shown, the main screen with its scrollback. Not
/// thread-safe: one owner draws and restores.
public final class TerminalScreen {
    public let fd: Int32
    private let saved: termios
    private var active = true

    /// Takes over the terminal on `fd`; throws `ENOTTY` when `fd` is not a terminal.
    public init(fd: Int32) throws(Errno) {
        var mode = termios()
        try Syscall.retrying { tcgetattr(fd, &mode) }
        self.fd = fd
        saved = mode
        // Keep ISIG so Ctrl-C still raises SIGINT; drop echo and line editing so typed keys
        // neither land in the view nor wait for the shell.
        mode.c_lflag &= ~tcflag_t(ECHO | ICANON)
        try Syscall.retrying { tcsetattr(fd, TCSANOW, &mode) }
        // Alternate screen on, cursor off.
        try? write("\u{1B}[?1049h\u{1B}[?25l")
    }

    deinit { restore() }

    /// The terminal's size, or nil when `fd` is not a terminal (TIOCGWINSZ).
    public static func size(of fd: Int32) -> (rows: Int, columns: Int)? {
        var rows: UInt16 = 0
        var columns: UInt16 = 0
        guard (try? Syscall.negativeErrno({ ftvm_terminal_size(fd, &rows, &columns) })) != nil, columns > 0 else {
            return nil
        }
        return (Int(rows), Int(columns))
    }

    /// Redraws the whole screen with `lines` (each already fitted to the width), keeping to
    /// `rows` lines so the screen never scrolls.
    public func draw(_ lines: [String], rows: Int) throws(Errno) {
        var frame = "\u{1B}[H"
        for (index, line) in lines.prefix(max(1, rows)).enumerated() {
            frame += (index == 0 ? "" : "\r\n") + line + "\u{1B}[K"
        }
        try write(frame + "\u{1B}[J")
    }

    /// Leaves the alternate screen, shows the cursor and puts the saved termios back
    /// (TCSAFLUSH: keys typed during the view are dropped, not handed to the shell). Once.
    public func restore() {
        guard active else { return }
        active = false
        try? write("\u{1B}[?25h\u{1B}[?1049l")
        var mode = saved
        _ = try? Syscall.retrying { tcsetattr(fd, TCSAFLUSH, &mode) }
    }

    private func write(_ text: String) throws(Errno) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            offset += try Syscall.retrying {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            }
        }
    }
}
