import ArgumentParser
import FTVMBench
import FTVMController
import FTVMLog
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (see docs/): the relay's per-frame cost.",
        subcommands: [Frames.self])

    struct Frames: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "The relay's own cost per frame (parse and log) and CRC32C's speed, in-process. Use a release build.")

        @Option(name: .long, help: "Frames per measurement.")
        var count = 30_000

        @Option(name: .long, help: "Repetitions (the best of them is printed).")
        var repeats = 5

        func run() throws {
            var best: [String: FrameCostBenchmark.Result] = [:]
            var order: [String] = []
            for _ in 0..<repeats {
                for result in try FrameCostBenchmark.run(frames: count) {
                    if best[result.name] == nil { order.append(result.name) }
                    if best[result.name].map({ result.nanosPerFrame < $0.nanosPerFrame }) ?? true {
                        best[result.name] = result
                    }
                }
            }
            let baseline = best[order[0]]?.nanosPerFrame ?? 0
            print("frames per run: \(count), best of \(repeats)")
            for name in order {
                let value = best[name]?.nanosPerFrame ?? 0
                let net = name == order[0] ? "" : String(format: "   (net of building: %.0f ns)", value - baseline)
                print(
                    name.padding(toLength: 38, withPad: " ", startingAt: 0) + String(format: "%8.0f ns/frame", value)
                        + net)
            }
            try printChecksums()
        }

        /// Each CRC32C implementation side by side (best of the repeats), and which one the relay uses.
        private func printChecksums() throws {
            var best: [String: FrameCostBenchmark.ChecksumResult] = [:]
            var order: [String] = []
            for _ in 0..<repeats {
                for result in FrameCostBenchmark.checksums(frames: count) {
                    let key = "\(result.implementation) \(result.bytes)"
                    if best[key] == nil { order.append(key) }
                    if best[key].map({ result.nanosPerBuffer < $0.nanosPerBuffer }) ?? true { best[key] = result }
                }
            }
            let results = order.compactMap { best[$0] }
            let bySize = Dictionary(grouping: results, by: \.bytes)
            if let (bytes, _) = bySize.first(where: { Set($0.value.map(\.checksum)).count > 1 }) {
                throw ValidationError(
                    "the CRC32C implementations disagree over \(bytes)-byte buffers: a bug, report it")
            }
            print("CRC32C used by the relay: \(CRC32C.Implementation.active)")
            for result in results {
                let name = "CRC32C \(result.implementation), \(result.bytes) B"
                print(
                    name.padding(toLength: 38, withPad: " ", startingAt: 0)
                        + String(
                            format: "%8.0f ns/buffer   %5.2f GB/s", result.nanosPerBuffer, result.gigabytesPerSecond))
            }
        }
    }
}
