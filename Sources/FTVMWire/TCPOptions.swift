/// The TCP timestamps option (RFC 7323 §3): the sender's clock and the echo of the peer's.
///
/// These are not sequence numbers but are compared the same way (mod 2^32) by PAWS, which is why
/// a replayed connection shifts them: the backup's clock starts elsewhere than the primary's.
public struct TCPTimestamps: Hashable, Sendable {
    /// TSval.
    public var value: UInt32
    /// TSecr.
    public var echoReply: UInt32

    public init(value: UInt32, echoReply: UInt32) {
        self.value = value
        self.echoReply = echoReply
    }
}

/// One SACK block (RFC 2018 §3): received bytes `left..<right`.
public struct SACKBlock: Hashable, Sendable {
    public var left: SequenceNumber
    public var right: SequenceNumber

    public init(left: SequenceNumber, right: SequenceNumber) {
        self.left = left
        self.right = right
    }
}

/// Up to four SACK blocks, stored inline so parsing a segment never allocates.
public struct SACKBlocks: RandomAccessCollection, Hashable, Sendable {
    /// One option carries at most 4 blocks (2 + 8 × 4 = 34 of the 40 option bytes).
    public static let capacity = 4

    private var storage: (SACKBlock, SACKBlock, SACKBlock, SACKBlock)
    private var stored: Int

    public init() {
        let empty = SACKBlock(left: SequenceNumber(0), right: SequenceNumber(0))
        storage = (empty, empty, empty, empty)
        stored = 0
    }

    /// - Throws: `.tooManySACKBlocks` for more than four.
    public init(_ blocks: some Sequence<SACKBlock>) throws(WireError) {
        self.init()
        for block in blocks { try append(block) }
    }

    /// - Throws: `.tooManySACKBlocks` when four are already stored.
    public mutating func append(_ block: SACKBlock) throws(WireError) {
        guard stored < Self.capacity else { throw .tooManySACKBlocks }
        stored += 1
        self[stored - 1] = block
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { stored }

    /// The block at `position` (`0..<count`; outside that is a programming error and traps).
    public subscript(position: Int) -> SACKBlock {
        get {
            precondition(position >= 0 && position < stored, "SACK block index out of range")
            switch position {
            case 0: return storage.0
            case 1: return storage.1
            case 2: return storage.2
            default: return storage.3
            }
        }
        set {
            precondition(position >= 0 && position < stored, "SACK block index out of range")
            switch position {
            case 0: storage.0 = newValue
            case 1: storage.1 = newValue
            case 2: storage.2 = newValue
            default: storage.3 = newValue
            }
        }
    }

    public static func == (lhs: SACKBlocks, rhs: SACKBlocks) -> Bool {
        lhs.elementsEqual(rhs)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(stored)
        for block in self { hasher.combine(block) }
    }
}

/// The TCP options the connection log and replay care about, parsed or to be built.
///
/// The fake SYN of a replay must carry the client's original options (RFC 7323 and RFC 2018 are
/// negotiated only on the SYN), and later segments need their SACK edges and timestamps shifted.
/// Other options (TCP Fast Open, MPTCP, MD5) are skipped by length when parsing.
public struct TCPOptions: Hashable, Sendable {
    /// Kind 2 (RFC 9293 §3.2): the largest segment the sender will accept. SYN only.
    public var maximumSegmentSize: UInt16?
    /// Kind 3 (RFC 7323 §2): the shift count for the window field. SYN only.
    public var windowScale: UInt8?
    /// Kind 4 (RFC 2018 §2). SYN only.
    public var sackPermitted: Bool
    /// Kind 8 (RFC 7323 §3).
    public var timestamps: TCPTimestamps?
    /// Kind 5 (RFC 2018 §3), empty when absent.
    public var sackBlocks: SACKBlocks

    public init(
        maximumSegmentSize: UInt16? = nil, windowScale: UInt8? = nil, sackPermitted: Bool = false,
        timestamps: TCPTimestamps? = nil, sackBlocks: SACKBlocks = SACKBlocks()
    ) {
        self.maximumSegmentSize = maximumSegmentSize
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.timestamps = timestamps
        self.sackBlocks = sackBlocks
    }

    /// Option kinds (IANA "TCP Option Kind Numbers").
    public enum Kind {
        public static let endOfList: UInt8 = 0
        public static let noOperation: UInt8 = 1
        public static let maximumSegmentSize: UInt8 = 2
        public static let windowScale: UInt8 = 3
        public static let sackPermitted: UInt8 = 4
        public static let sack: UInt8 = 5
        public static let timestamps: UInt8 = 8
    }

    /// The most option bytes a TCP header can carry (Data Offset 15 → 60 bytes).
    public static let maximumLength = 40
}

/// Where the rewritable options sit in the frame (absolute offsets; `nil` when absent).
public struct TCPOptionOffsets: Hashable, Sendable {
    /// The MSS value (2 bytes).
    public var maximumSegmentSize: Int?
    /// The shift count (1 byte).
    public var windowScale: Int?
    /// TSval (4 bytes), followed by TSecr (4 bytes).
    public var timestamps: Int?
    /// The first block's left edge; blocks are 8 bytes each.
    public var sackBlocks: Int?

    public init() {}
}

extension TCPOptions {
    /// Parses the option bytes `start..<end` of `frame` (the TCP header after its fixed 20 bytes).
    /// `headerStart` is only used to report offsets relative to the TCP header in errors.
    static func parse(
        frame: UnsafeMutableRawBufferPointer, start: Int, end: Int, headerStart: Int
    ) throws(WireError) -> (TCPOptions, TCPOptionOffsets) {
        var options = TCPOptions()
        var offsets = TCPOptionOffsets()
        var index = start
        scan: while index < end {
            let kind = frame.wireU8(at: index)
            switch kind {
            case Kind.endOfList:
                break scan
            case Kind.noOperation:
                index += 1
                continue scan
            default:
                break
            }
            guard end - index >= 2 else { throw .tcpOptionBeyondHeader(kind: kind, offset: index - headerStart) }
            let length = frame.wireU8(at: index + 1)
            guard length >= 2 else { throw .tcpOptionLengthTooSmall(kind: kind, length: length) }
            guard Int(length) <= end - index else {
                throw .tcpOptionBeyondHeader(kind: kind, offset: index - headerStart)
            }
            switch kind {
            case Kind.maximumSegmentSize:
                guard length == 4 else { throw .tcpOptionBadLength(kind: kind, length: length) }
                guard offsets.maximumSegmentSize == nil else { throw .tcpOptionDuplicate(kind: kind) }
                offsets.maximumSegmentSize = index + 2
                options.maximumSegmentSize = frame.wireU16(at: index + 2)
            case Kind.windowScale:
                guard length == 3 else { throw .tcpOptionBadLength(kind: kind, length: length) }
                guard offsets.windowScale == nil else { throw .tcpOptionDuplicate(kind: kind) }
                offsets.windowScale = index + 2
                options.windowScale = frame.wireU8(at: index + 2)
            case Kind.sackPermitted:
                guard length == 2 else { throw .tcpOptionBadLength(kind: kind, length: length) }
                guard !options.sackPermitted else { throw .tcpOptionDuplicate(kind: kind) }
                options.sackPermitted = true
            case Kind.sack:
                let blockBytes = Int(length) - 2
                guard blockBytes >= 8, blockBytes % 8 == 0, blockBytes / 8 <= SACKBlocks.capacity else {
                    throw .tcpOptionBadLength(kind: kind, length: length)
                }
                guard offsets.sackBlocks == nil else { throw .tcpOptionDuplicate(kind: kind) }
                offsets.sackBlocks = index + 2
                var block = index + 2
                while block < index + Int(length) {
                    // Cannot overflow the capacity: checked above.
                    try options.sackBlocks.append(
                        SACKBlock(
                            left: SequenceNumber(frame.wireU32(at: block)),
                            right: SequenceNumber(frame.wireU32(at: block + 4))))
                    block += 8
                }
            case Kind.timestamps:
                guard length == 10 else { throw .tcpOptionBadLength(kind: kind, length: length) }
                guard offsets.timestamps == nil else { throw .tcpOptionDuplicate(kind: kind) }
                offsets.timestamps = index + 2
                options.timestamps = TCPTimestamps(
                    value: frame.wireU32(at: index + 2), echoReply: frame.wireU32(at: index + 6))
            default:
                break  // Unknown: skipped by its length.
            }
            index += Int(length)
        }
        return (options, offsets)
    }

    /// How many bytes `FrameBuilder` writes for these options (a multiple of 4).
    ///
    /// The layout is Linux's, so a fake SYN looks like the client's own: MSS; SACK-permitted and
    /// timestamps together (`04 02 08 0a …`) or each after two NOPs; `01 03 03 ws`; SACK blocks
    /// after two NOPs.
    public var encodedLength: Int {
        var length = 0
        if maximumSegmentSize != nil { length += 4 }
        if timestamps != nil {
            length += 12
        } else if sackPermitted {
            length += 4
        }
        if windowScale != nil { length += 4 }
        if !sackBlocks.isEmpty { length += 4 + 8 * sackBlocks.count }
        return length
    }

    /// Writes the options at `offset` in Linux's layout (see `encodedLength`); the caller has
    /// checked that `encodedLength` bytes fit.
    func encode(into frame: UnsafeMutableRawBufferPointer, at offset: Int) {
        var index = offset
        func put(_ byte: UInt8) {
            frame.setWireU8(byte, at: index)
            index += 1
        }
        if let mss = maximumSegmentSize {
            put(Kind.maximumSegmentSize)
            put(4)
            frame.setWireU16(mss, at: index)
            index += 2
        }
        if let timestamps {
            if sackPermitted {
                put(Kind.sackPermitted)
                put(2)
            } else {
                put(Kind.noOperation)
                put(Kind.noOperation)
            }
            put(Kind.timestamps)
            put(10)
            frame.setWireU32(timestamps.value, at: index)
            frame.setWireU32(timestamps.echoReply, at: index + 4)
            index += 8
        } else if sackPermitted {
            put(Kind.noOperation)
            put(Kind.noOperation)
            put(Kind.sackPermitted)
            put(2)
        }
        if let windowScale {
            put(Kind.noOperation)
            put(Kind.windowScale)
            put(3)
            put(windowScale)
        }
        if !sackBlocks.isEmpty {
            put(Kind.noOperation)
            put(Kind.noOperation)
            put(Kind.sack)
            put(UInt8(2 + 8 * sackBlocks.count))
            for block in sackBlocks {
                frame.setWireU32(block.left.rawValue, at: index)
                frame.setWireU32(block.right.rawValue, at: index + 4)
                index += 8
            }
        }
    }
}
