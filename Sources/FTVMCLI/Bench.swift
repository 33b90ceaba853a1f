import ArgumentParser
import FTVMController
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (see docs/): the relay's per-frame cost.",
        subcommands: [Frames.self])

    struct Frames: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The relay's own cost per frame (parse and log), in-process. Use a release build.")

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
        }
    }
}
