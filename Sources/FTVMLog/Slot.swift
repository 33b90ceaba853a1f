/// A connection's place in the log, as handed out by `ConnectionLog.open` and `lookup`.
///
/// Valid from `open` until `close`: the serial tells a slot's current connection from an earlier
/// one that used the same slot, so a stale `Slot` is caught instead of writing to a stranger.
public struct Slot: Hashable, Sendable, CustomStringConvertible {
    /// The record slot (0..<slot count).
    public let index: Int
    /// The connection's serial: unique for the life of the log file.
    public let serial: UInt64

    public init(index: Int, serial: UInt64) {
        self.index = index
        self.serial = serial
    }

    public var description: String { "slot \(index) (connection #\(serial))" }
}
