import FTVMDemoKit
import FTVMTrim
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
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else {
        return
    }
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
    let versionFile = options.versionFile
    let readVersion = { readVersionFile(versionFile) }
    let (http, port) = try EventLoop.listen(address: options.address, port: options.port)
    var listeners = [Listener(socket: http, port: port, kind: .http)]
    var trims: TrimNotifier?
    if let commandPort = options.commandPort {
        let (socket, port) = try EventLoop.listen(address: options.address, port: commandPort)
        listeners.append(Listener(socket: socket, port: port, kind: .command))
        trims = options.trimSocket.map { TrimNotifier(path: $0) } ?? TrimNotifier()
    }
    let proxy = try options.proxyPort.map { proxyPort in
        let (socket, port) = try EventLoop.listen(address: options.address, port: proxyPort)
        return (Proxy(listener: socket, backend: options.proxyTarget), port)
    }
    let loop = EventLoop(
        listeners: listeners, router: DemoRouter(readVersion: readVersion), readVersion: readVersion, trims: trims)
    // The HTTP line comes first, always: scripts and tests wait for it.
    log("listening on :\(port)")
    if let command = listeners.dropFirst().first { log("command protocol listening on :\(command.port)") }
    if let (proxy, port) = proxy {
        proxy.start()
        log(
            "proxy listening on :\(port) for \(options.proxyTarget.address.map(String.init).joined(separator: ".")):\(options.proxyTarget.port)"
        )
    }
    try loop.run()
} catch {
    log("\(error)")
    exit(1)
}
