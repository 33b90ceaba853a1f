import ArgumentParser
import FTVMController

extension Fault: ExpressibleByArgument {}

struct Inject: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a real fault into the primary and print when, so detection can be timed from it.",
        discussion: "Faults: \(Fault.allCases.map(\.rawValue).joined(separator: ", ")).")

    @Argument(help: "The fault to inject.")
    var fault: Fault

    @OptionGroup var pair: PairOptions

    @Option(name: .long, help: "For service-crash and service-hang: which service (default: the first, demo).")
    var service: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Wait up to this many seconds for the pair to be protected (its backup paused and ready), and inject only then; fail if it is not by then.",
            valueName: "seconds"))
    var whenProtected: Double?

    func validate() throws {
        if let whenProtected, !(0...3600).contains(whenProtected) {
            throw ValidationError("--when-protected takes a number of seconds from 0 to 3600 (not \(whenProtected))")
        }
    }

    func run() throws {
        let request = ControlRequest.inject(fault, service: service, whenProtectedSeconds: whenProtected)
        let response = try send(request, pair: pair, timeoutSeconds: 120 + Int(whenProtected ?? 0))
        print("ftvm: \(response.message ?? "injected")")
    }
}

struct Failover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hand the service to the paused backup now (a planned switch), then re-protect.")

    @OptionGroup var pair: PairOptions

    func run() throws {
        let response = try send(.failover, pair: pair)
        if let status = response.status { StatusPrinter.print(status) }
    }
}

/// Sends a request to the pair's daemon; a daemon-side error becomes a command failure.
func send(_ request: ControlRequest, pair: PairOptions, timeoutSeconds: Int = 120) throws -> ControlResponse {
    let response: ControlResponse
    do {
        response = try ControlClient.send(request, to: try pair.config(), timeoutSeconds: timeoutSeconds)
    } catch let error as ControlError {
        throw CommandFailure(error.description)
    }
    if let error = response.error { throw CommandFailure(error) }
    return response
}
