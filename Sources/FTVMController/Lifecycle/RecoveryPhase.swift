/// The timed phases of a recovery or an upgrade (invariant 7), in the order they can happen.
/// One list for `ftvm status`, the metrics and `ftvm watch`, so their names cannot drift.
public enum RecoveryPhase: String, Sendable, CaseIterable, Codable {
    /// The suspected primary is cut off at the relay and paused or destroyed.
    case fence
    /// The relay forwards to the backup.
    case `switch`
    /// The backup's vCPUs run again.
    case resume
    /// A guest booted because none was waiting: a takeover whose backup could not run, or an
    /// upgrade's new guest.
    case boot
    /// An upgrade's old primary finished its connections (or the drain's deadline passed).
    case drain
    /// The clients got the first frame for the new guest: the relay's announcement of the
    /// service on its behalf (`Relay.beginReplay`), or the guest's own frame if that came first.
    case firstPacket = "first-packet"
    /// The last open connection was spliced.
    case replay
    /// The first byte a client did not have yet reached it.
    case firstByte = "first-byte"
    /// An upgrade moved the connections still open on the old guest.
    case move
    /// An upgrade removed the old guests.
    case retire
    /// A fresh backup is paused and ready: the pair is protected again.
    case reprotected = "re-protected"

    /// What a takeover marks, in order (an upgrade marks its own subset).
    public static let takeover: [RecoveryPhase] = [
        .fence, .switch, .resume, .boot, .firstPacket, .replay, .firstByte, .reprotected,
    ]
}
