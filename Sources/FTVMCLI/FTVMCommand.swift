import ArgumentParser
import FTVMController

/// `ftvm`: the command line. Each subcommand is a thin layer over FTVMController.
public struct FTVMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ftvm",
        abstract: "Keep a network service in a VM alive across crashes and upgrades, without its clients noticing.",
        subcommands: [Up.self, Status.self, Down.self, Daemon.self])

    public init() {}
}

/// Options every pair command shares.
struct PairOptions: ParsableArguments {
    @Option(name: .long, help: "The pair's name (1-10 of a-z, 0-9, '-').")
    var name: String = PairConfig.defaultName

    func config(image: String = PairConfig.defaultImageDirectory) throws -> PairConfig {
        do {
            return try PairConfig(name: name, imageDirectory: image)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// A user-facing failure: printed as is, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
