import FTVMDemoKit
import Glibc

/// Reads the version file for `GET /version`. A blocking read on the event-loop thread is fine:
/// the file is a few bytes on the initramfs.
func readVersionFile(_ path: String) -> [UInt8]? {
    guard let raw = try? systemCall("open", { open(path, O_RDONLY | O_CLOEXEC) }) else { return nil }
    let file = FileDescriptor(raw)
    var contents: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while contents.count < 64 * 1024 {
        let count = buffer.withUnsafeMutableBytes { bytes in
            try? systemCall("read") { read(file.raw, bytes.baseAddress!, bytes.count) }
        }
        guard let count else { return nil }
        if count == 0 { break }
        contents.append(contentsOf: buffer[0..<count])
    }
    return contents
}

/// Lets 1000+ connections through the default soft limit of 1024 descriptors.
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = min(limit.rlim_max, 65536)
    _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}

let options: DemoServiceOptions
do {
    options = try DemoServiceOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    switch error {
    case .helpRequested:
        print(DemoServiceOptions.usage)
        exit(0)
    case .invalid(let message):
        log("\(message)\n\(DemoServiceOptions.usage)")
        exit(2)
    }
}

// Clients that vanish mid-response must cost an EPIPE, not the process.
signal(SIGPIPE, SIG_IGN)
raiseDescriptorLimit()

do {
    let (listener, port) = try EventLoop.listen(address: options.address, port: options.port)
    let versionFile = options.versionFile
    let loop = EventLoop(listener: listener, router: DemoRouter(readVersion: { readVersionFile(versionFile) }))
    log("listening on :\(port)")
    try loop.run()
} catch {
    log("\(error)")
    exit(1)
}
