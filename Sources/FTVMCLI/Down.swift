import ArgumentParser
import FTVMController
import FTVMVirt
import Logging

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the pair: domains, shared-memory files, tap and namespace.")

    @OptionGroup var pair: PairOptions

    func run() throws {
        let config = try pair.config()
        do {
            _ = try ControlClient.send(ControlRequest.down, to: config, timeoutSeconds: 120)
            // The daemon answers once the pair is gone, then exits: wait for that too.
            if !PairHost.waitUntilUnlocked(config, seconds: 10) {
                print("ftvm: the daemon of pair '\(config.name)' took the pair down but has not exited yet")
            }
            print("ftvm: pair '\(config.name)' is down")
        } catch ControlError.notRunning {
            // No daemon (it crashed or was killed): clean up from what libvirt and the host show.
            let virt: LibvirtConnection
            do {
                virt = try LibvirtConnection(uri: config.libvirtURI)
            } catch {
                throw CommandFailure("\(error)")
            }
            PairCleanup.removeAll(config: config, virt: virt, logger: Logger(label: "ftvm.down"))
            print("ftvm: no daemon was running; removed what pair '\(config.name)' left behind")
        }
    }
}
