import FTVMWire
import SeededRandom

/// Random but well-formed Ethernet/IPv4/TCP frames, assembled byte by byte without FrameBuilder,
/// with option layouts FrameBuilder never produces: fields at odd offsets, unknown options, EOL
/// padding, IPv4 options, Ethernet padding. Checksums from `Reference`.
struct RandomTCPFrame {
    var bytes: [UInt8]
    var sequenceNumber: UInt32
    var acknowledgmentNumber: UInt32
    var timestamps: (UInt32, UInt32)?
    var sackBlocks: [(UInt32, UInt32)]
    /// Offset of TSval and of the first SACK edge in the frame.
    var timestampsOffset: Int?
    var sackOffset: Int?
    var payloadLength: Int
    var paddingLength: Int

    static func make(using rng: inout SplitMix64) -> RandomTCPFrame {
        func byte() -> UInt8 { UInt8.random(in: 0...255, using: &rng) }
        func word() -> UInt32 { interesting32(using: &rng) }

        // TCP options: a random selection in random order with random NOPs, at most 40 bytes.
        var options: [UInt8] = []
        var timestamps: (UInt32, UInt32)?
        var sackBlocks: [(UInt32, UInt32)] = []
        var timestampsAt: Int?
        var sackAt: Int?
        var candidates = ["mss", "ws", "sackp", "ts", "sack", "unknown", "unknown"].shuffled(using: &rng)
        candidates = Array(candidates.prefix(Int.random(in: 0...candidates.count, using: &rng)))
        for candidate in candidates {
            var option: [UInt8] = []
            let nops = Int.random(in: 0...3, using: &rng)
            switch candidate {
            case "mss": option = [2, 4, byte(), byte()]
            case "ws": option = [3, 3, UInt8.random(in: 0...14, using: &rng)]
            case "sackp": option = [4, 2]
            case "ts":
                let value = (word(), word())
                option = [8, 10]
                option.append32(value.0)
                option.append32(value.1)
                if options.count + nops + option.count <= 40 {
                    timestamps = value
                    timestampsAt = options.count + nops + 2
                }
            case "sack":
                let room = (40 - options.count - nops - 2) / 8
                guard room >= 1 else { continue }
                let count = Int.random(in: 1...min(4, room), using: &rng)
                option = [5, UInt8(2 + 8 * count)]
                var blocks: [(UInt32, UInt32)] = []
                for _ in 0..<count {
                    let block = (word(), word())
                    blocks.append(block)
                    option.append32(block.0)
                    option.append32(block.1)
                }
                sackBlocks = blocks
                sackAt = options.count + nops + 2
            default:
                let kind = [UInt8](arrayLiteral: 6, 7, 9, 19, 28, 29, 30, 34, 253, 254).randomElement(using: &rng)!
                let length = Int.random(in: 2...8, using: &rng)
                option = [kind, UInt8(length)] + (2..<length).map { _ in byte() }
            }
            guard options.count + nops + option.count <= 40 else {
                if candidate == "sack" {
                    sackBlocks = []
                    sackAt = nil
                }
                continue
            }
            options += [UInt8](repeating: 1, count: nops) + option
        }
        // Pad with NOPs or EOLs (after an EOL the rest of the header is ignored).
        while options.count % 4 != 0 { options.append(Bool.random(using: &rng) ? 0 : 1) }

        let ipOptions: [UInt8] =
            Int.random(in: 0..<8, using: &rng) == 0 ? [0x94, 0x04, 0x00, 0x00] : []
        let payload = (0..<Int.random(in: 0...(Bool.random(using: &rng) ? 8 : 300), using: &rng)).map { _ in byte() }
        let padding = (0..<Int.random(in: 0...(Int.random(in: 0..<4, using: &rng) == 0 ? 20 : 0), using: &rng)).map {
            _ in byte()
        }

        var frame: [UInt8] = (0..<12).map { _ in byte() } + [0x08, 0x00]
        let ihl = 5 + ipOptions.count / 4
        let tcpHeaderLength = 20 + options.count
        let total = ihl * 4 + tcpHeaderLength + payload.count
        frame += [UInt8(0x40 | ihl), byte(), UInt8(total >> 8), UInt8(total & 0xFF), byte(), byte()]
        frame += [Bool.random(using: &rng) ? 0x40 : 0x00, 0x00, byte(), 6, 0, 0]
        frame += (0..<8).map { _ in byte() } + ipOptions
        let sequence = word()
        let acknowledgment = word()
        frame += [byte(), byte(), byte(), byte()]
        frame.append32(sequence)
        frame.append32(acknowledgment)
        frame += [UInt8(tcpHeaderLength / 4) << 4, byte(), byte(), byte(), 0, 0, byte(), byte()]
        frame += options + payload + padding
        frame.put16(Reference.ipv4HeaderChecksum(frame), at: 24)
        let tcp = 14 + ihl * 4
        frame.put16(Reference.tcpChecksum(frame), at: tcp + 16)
        return RandomTCPFrame(
            bytes: frame, sequenceNumber: sequence, acknowledgmentNumber: acknowledgment, timestamps: timestamps,
            sackBlocks: sackBlocks, timestampsOffset: timestampsAt.map { tcp + 20 + $0 },
            sackOffset: sackAt.map { tcp + 20 + $0 }, payloadLength: payload.count, paddingLength: padding.count)
    }
}

/// A 32-bit value biased towards the edges where arithmetic goes wrong: 0, 2^32 − 1, 2^31 ± 1,
/// and values near them, and values whose halves are 0x0000 or 0xFFFF.
func interesting32(using rng: inout SplitMix64) -> UInt32 {
    switch Int.random(in: 0..<10, using: &rng) {
    case 0: return [0, 0xFFFF_FFFF, 0x8000_0000, 0x7FFF_FFFF, 0xFFFF_0000, 0x0000_FFFF].randomElement(using: &rng)!
    case 1: return 0 &- UInt32.random(in: 0...64, using: &rng)
    case 2: return UInt32.random(in: 0...64, using: &rng)
    case 3: return 0x8000_0000 &+ UInt32.random(in: 0...64, using: &rng) &- 32
    default: return UInt32.random(in: 0...UInt32.max, using: &rng)
    }
}

extension Array where Element == UInt8 {
    mutating func append32(_ value: UInt32) {
        append(contentsOf: [
            UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF),
        ])
    }
}
