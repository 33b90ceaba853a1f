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

    func run() throws {
        let response = try send(ControlRequest(.inject, fault: fault.rawValue, service: service), pair: pair)
        print("ftvm: \(response.message ?? "injected")")
    }
}

struct Failover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hand the service to the paused backup now (a planned switch), then re-protect.")

    @OptionGroup var pair: PairOptions

    func run() throws {
        let response = try send(ControlRequest(.failover), pair: pair)
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
