import ArgumentParser
import FTVMController
import FTVMSystem
import Foundation
import Glibc
import SeededRandom
import Synchronization

/// `ftvm chaos`: a fault campaign against a live pair under verifying load, with a verdict.
struct Chaos: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Inject faults into a live pair while verified downloads, uploads and sessions run, and give a verdict.",
        discussion: """
            Each round waits for the pair to be protected, starts --parallel paced downloads of the \
            --url resources (from --client-netns), --uploads paced uploads to --upload-url (a digest \
            endpoint), --sessions keep-alive sessions of --session-requests requests each (every answer \
            checked, all on one connection), --pipelined sessions whose requests are all written at \
            once (HTTP/1.1 pipelining), and a stream of small requests (HEAD of --request-url), puts one fault in at a \
            random moment, and checks every transfer: ok (byte-exact download, or the upload's digest \
            answered), reset, cut short, or WRONG BYTES (never acceptable), and every request's answer. \
            Each resource is fetched twice before the campaign to take its SHA-256; one that answers \
            different bytes each time is checked by its length only, and a replay cannot carry it. \
            Without --url, a pair that terminates HTTPS for the demo service's port 80 is also \
            exercised over HTTPS: downloads and keep-alive sessions through its terminator. \
            Faults: every `ftvm inject` fault, daemon-kill (the daemon SIGKILLed during a takeover and \
            started again with its own arguments) and upgrade (to the image the pair runs). Exits 0 \
            only when every transfer came through byte-exact.
            """)

    @OptionGroup var pair: PairOptions

    @Option(name: .long, help: "Faults to draw from: a comma-separated list, or all.")
    var faults = "all"

    @Option(name: .long, help: "Rounds (one fault each); 10 by default, or no limit but --minutes.")
    var count: Int?

    @Option(
        name: .long,
        help:
            "Start no round after this many minutes (the round under way finishes); with --count, whichever comes first."
    )
    var minutes: Double?

    @Option(name: .long, help: "The campaign's seed (the fault sequence and the moments); random by default.")
    var seed: UInt64?

    @Option(
        name: .customLong("url"),
        help: "A resource to download and verify (repeatable; default: 16 MB from the demo service's /bytes).")
    var urls: [String] = []

    @Option(name: .long, help: "The network namespace the clients run in (default: the pair's own).")
    var clientNetns: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The CA certificate that signs the https --url resources' server (a pair serving HTTPS with --tls-port, docs/https.md).",
            valueName: "file"))
    var cacert: String?

    @Option(
        name: .long,
        help: "What each round's stream of HEAD requests asks for (default: the first --url).")
    var requestURL: String?

    @Option(name: .long, help: "Downloads in flight in each round.")
    var parallel = 4

    @Option(name: .long, help: "Each download's pace (curl --limit-rate), so the fault lands mid-transfer.")
    var rate = "2M"

    @Option(
        name: .customLong("upload-url"),
        help: ArgumentHelp(
            "Where each round POSTs an upload, whose answer must be the body's SHA-256 in hex (default: the demo service's /sha256 when no --url is given; none otherwise).",
            valueName: "url"))
    var uploadURL: String?

    @Option(name: .long, help: "Uploads in flight in each round (when there is an --upload-url).")
    var uploads = 1

    @Option(name: .long, help: "Each upload's size in MiB, paced like the downloads.")
    var uploadMib = 8

    @Option(
        name: .long,
        help:
            "Keep-alive sessions in each round: one connection each, --session-requests requests of the --url resources in turn, paced."
    )
    var sessions = 1

    @Option(name: .long, help: "Requests in each keep-alive session.")
    var sessionRequests = 6

    @Option(
        name: .long,
        help:
            "Pipelined sessions in each round: one connection each, its --session-requests requests written at once (HTTP/1.1 pipelining), the answers read in order, paced (the --url resources must then be on one http://A.B.C.D server)."
    )
    var pipelined = 1

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve a counting back end at ADDRESS:PORT in the clients' namespace, where the pair's proxy sends its requests; each round's proxied requests (--proxy) must each reach it exactly once.",
            valueName: "address:port"))
    var backend: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A URL prefix the pair proxies to --backend (repeatable): each round sends a keep-alive session of --session-requests requests and a paced download through it, each request a new /bytes/N?seed=S.",
            valueName: "url"))
    var proxy: [String] = []

    @Flag(name: .long, help: "One JSON object per round, then the summary.")
    var json = false

    @Flag(name: .long, help: "Print the seeded fault sequence and exit.")
    var plan = false

    static let extraFaults = ["daemon-kill", "upgrade"]

    /// A rate as curl's `--limit-rate` takes it (bytes, or with K, M or G: powers of 1024).
    static func bytesPerSecond(_ rate: String) -> Int? {
        let units: [Character: Int] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
        guard let last = rate.lowercased().last else { return nil }
        let (digits, unit) = units[last].map { (rate.dropLast(), $0) } ?? (Substring(rate), 1)
        guard let value = Int(digits), value > 0 else { return nil }
        return value * unit
    }

    /// Rounds planned: `--count`, or 10, or (with `--minutes` alone) as many as fit.
    var rounds: Int { count ?? (minutes == nil ? 10 : 100_000) }

    func validate() throws {
        if let count, !(1...100_000).contains(count) { throw ValidationError("--count must be 1-100000") }
        if let minutes, !(minutes > 0 && minutes <= 7 * 24 * 60) {
            throw ValidationError("--minutes must be more than 0 and at most a week (10080)")
        }
        if plan, count == nil, minutes != nil { throw ValidationError("--plan with --minutes needs --count") }
        guard (0...16).contains(uploads) else { throw ValidationError("--uploads must be 0-16") }
        guard (1...1024).contains(uploadMib) else { throw ValidationError("--upload-mib must be 1-1024") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be 1-64") }
        guard (0...16).contains(sessions) else { throw ValidationError("--sessions must be 0-16") }
        guard (1...1000).contains(sessionRequests) else { throw ValidationError("--session-requests must be 1-1000") }
        guard (0...16).contains(pipelined) else { throw ValidationError("--pipelined must be 0-16") }
        guard Self.bytesPerSecond(rate) != nil else {
            throw ValidationError("--rate must be a byte rate as curl takes it: 500K, 2M, 1048576")
        }
        if (backend == nil) != proxy.isEmpty {
            throw ValidationError("--backend and --proxy go together: the back end the proxy prefixes lead to")
        }
        if let backend, IPv4Endpoint(backend) == nil {
            throw ValidationError("--backend must be ADDRESS:PORT (an IPv4 address), not \(backend)")
        }
        for prefix in proxy where !prefix.hasPrefix("http://") && !prefix.hasPrefix("https://") {
            throw ValidationError("--proxy must be an http:// or https:// URL prefix, not \(prefix)")
        }
        if pipelined > 0, !urls.isEmpty, Pipeline.Target.oneServer(urls) == nil {
            throw ValidationError(
                "--pipelined needs every --url on one http://A.B.C.D[:PORT] server (or --pipelined 0)")
        }
        if let cacert, !FileManager.default.isReadableFile(atPath: cacert) {
            throw ValidationError("--cacert \(cacert): no such readable file")
        }
        _ = try faultList()
    }

    func faultList() throws -> [String] {
        let known = Fault.allCases.map(\.rawValue) + Self.extraFaults
        if faults == "all" { return known }
        let list = faults.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for name in list where !known.contains(name) {
            throw ValidationError("unknown fault '\(name)': use all, or some of \(known.joined(separator: ", "))")
        }
        guard !list.isEmpty else { throw ValidationError("--faults names no fault") }
        return list
    }

    /// The campaign's fault sequence and each fault's moment (seconds after the downloads start).
    static func sequence(faults: [String], count: Int, seed: UInt64) -> [(fault: String, delay: Double)] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            (faults.randomElement(using: &random) ?? faults[0], Double.random(in: 1.0...3.0, using: &random))
        }
    }

    func run() throws {
        let seed = seed ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let rounds = Self.sequence(faults: try faultList(), count: self.rounds, seed: seed)
        if plan {
            for (index, round) in rounds.enumerated() {
                print("\(index + 1) \(round.fault) \(String(format: "%.2f", round.delay))")
            }
            return
        }
        _ = PipelinedSession.executable  // resolved now, before anything can replace the file
        let status = try send(.status, pair: pair).status.unwrapped("the daemon answered no status")
        if let cacert {
            // Every client is a curl started from here: they all take the CA from the environment.
            setenv("CURL_CA_BUNDLE", URL(fileURLWithPath: cacert).standardizedFileURL.path, 1)
        }
        let netns = clientNetns ?? status.namespace
        guard !netns.isEmpty else {
            throw CommandFailure("the pair's clients are on \(status.clients ?? "a bridge"): give --client-netns")
        }
        if netns == status.namespace {
            // The pair's own namespace (ftvm's): a 4 MiB receive buffer, or the kernel would take
            // a paced download whole at the link's speed and no byte would be in flight at the
            // fault (the host's default allows 32 MiB).
            let sysctl = Process()
            sysctl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            sysctl.arguments = ["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 131072 4194304"]
            try sysctl.run()
            sysctl.waitUntilExit()
        }
        var resources = try (urls.isEmpty ? ["http://\(status.serviceAddress)/bytes/16000000?seed=1"] : urls).map {
            try Resource.reference($0, netns: netns)
        }
        // The demo's sessions ask for smaller answers (2 MB, a second each at the default pace),
        // so a fault lands between requests as often as inside one. Each group of session
        // resources is one server's; a session asks one group.
        var sessionGroups =
            urls.isEmpty
            ? [
                try (2...3).map {
                    try Resource.reference("http://\(status.serviceAddress)/bytes/2000000?seed=\($0)", netns: netns)
                }
            ]
            : [resources]
        defer { try? FileManager.default.removeItem(atPath: pinnedKeyPath) }
        let https = urls.isEmpty ? try defaultHTTPS(status, netns: netns) : nil
        if let https {
            resources.append(https.download)
            sessionGroups.append(https.session)
        }
        let backEnd = try backend.flatMap(IPv4Endpoint.init).map { try CountingBackEnd($0, namespace: netns) }
        backEnd?.start()
        defer { backEnd?.stop() }
        let uploadTo = uploadURL ?? (urls.isEmpty ? "http://\(status.serviceAddress)/sha256" : nil)
        let body = try uploadTo.map { _ in try UploadBody(mebibytes: uploadMib, seed: seed) }
        defer { body?.remove() }
        if !json {
            let extent = [count.map { "\($0) faults" }, minutes.map { "\($0) minutes" }].compactMap { $0 }
            print(
                "ftvm chaos: pair \(pair.name), \((extent.isEmpty ? ["10 faults"] : extent).joined(separator: " or ")) from \(try faultList().joined(separator: ",")), seed \(seed)"
            )
            if let https { print("  https: \(https.download.url) beside http (\(https.trust))") }
            if let backEnd {
                print(
                    "  back end: counting at \(backEnd.endpoint) in \(netns); proxied through \(proxy.joined(separator: ", "))"
                )
            }
            for resource in resources where !resource.reproducible {
                print(
                    "  warning: \(resource.url) answers different bytes each time: checked by length only, and a replay cannot carry its downloads (they will be reset)"
                )
            }
        }
        var results: [RoundResult] = []
        let started = Date()
        let progress = Progress(
            total: minutes == nil ? self.rounds : count, enabled: !json && isatty(STDERR_FILENO) == 1)
        for (index, round) in rounds.enumerated() {
            if let minutes, Date().timeIntervalSince(started) >= minutes * 60 { break }
            progress.show(round: index + 1, fault: round.fault, elapsed: Date().timeIntervalSince(started))
            let result = try runRound(
                index + 1, fault: round.fault, delay: round.delay, resources: resources,
                sessionGroups: sessionGroups, uploads: body.flatMap { body in uploadTo.map { (body, $0) } },
                proxied: backEnd.map { ($0, seed) }, netns: netns)
            results.append(result)
            progress.clear()
            if json {
                print(String(decoding: try JSONEncoder.sorted.encode(result), as: UTF8.self))
            } else {
                print(result.line)
            }
            fflush(nil)  // each round as it ends, into a file or a pipe too
        }
        let summary = Summary(seed: seed, results: results)
        if json {
            print(String(decoding: try JSONEncoder.sorted.encode(summary), as: UTF8.self))
        } else {
            summary.printTable()
        }
        if !summary.passed { throw ExitCode(1) }
    }

    private func runRound(
        _ number: Int, fault: String, delay: Double, resources: [Resource], sessionGroups: [[Resource]],
        uploads upload: (UploadBody, String)?, proxied backEnd: (CountingBackEnd, campaign: UInt64)?, netns: String
    ) throws
        -> RoundResult
    {
        let waitStart = Date()
        let before = try waitUntilProtected()
        let protectedAfter = Date().timeIntervalSince(waitStart)
        let downloads = (0..<parallel).map {
            Download(resource: resources[$0 % resources.count], netns: netns, rate: rate)
        }
        let uploads =
            upload.map { body, url in
                (0..<self.uploads).map { _ in Upload(body: body, url: url, netns: netns, rate: rate) }
            } ?? []
        // --sessions keep-alive sessions to each server (HTTP, and HTTPS when the pair terminates it).
        let sessions = sessionGroups.flatMap { group in
            (0..<self.sessions).map { index in
                Session(
                    resources: (0..<sessionRequests).map { group[(index + $0) % group.count] }, netns: netns, rate: rate
                )
            }
        }
        let plain = sessionGroups[0]
        let pipelines = (0..<pipelined).map { index in
            PipelinedSession(
                resources: (0..<sessionRequests).map { plain[(index + $0) % plain.count] },
                netns: netns, bytesPerSecond: Self.bytesPerSecond(rate) ?? 1 << 21)
        }
        let proxied =
            try backEnd.map { _, campaign in
                try proxy.enumerated().map { index, prefix in
                    try ProxiedTransfers(
                        prefix: prefix,
                        seeds: (0...sessionRequests).map {
                            ProxiedBytes.requestSeed(campaign: campaign, round: number, request: index * 1000 + $0)
                        }, netns: netns, rate: rate)
                }
            } ?? []
        for transfers in proxied { try transfers.start() }
        defer { proxied.forEach { $0.stop() } }
        for download in downloads { try download.start() }
        for upload in uploads { try upload.start() }
        for session in sessions { try session.start() }
        for pipeline in pipelines { try pipeline.start() }
        defer {
            downloads.forEach { $0.stop() }
            uploads.forEach { $0.stop() }
            sessions.forEach { $0.stop() }
            pipelines.forEach { $0.stop() }
        }
        let requests = RequestLoop(url: requestURL ?? resources[0].url, netns: netns)
        requests.start()
        Thread.sleep(forTimeInterval: delay)
        var note: String?
        var recovery: RecoveryRecord?
        switch fault {
        case "upgrade":
            let image = before.imageDirectory ?? ""
            guard !image.hasPrefix("libvirt domain") else {
                throw CommandFailure("upgrade in a campaign needs a pair of ftvm's images; leave it out of --faults")
            }
            let previous = before.upgrade?.startedAt
            _ = try send(.upgrade(.image(image), drainTimeoutSeconds: 2), pair: pair)
            let record = try waitFor("the upgrade to finish", seconds: 300) {
                $0.upgrade?.startedAt != previous && $0.upgrade?.finished == true
            }.upgrade
            if record?.step != .done {
                note = "upgrade \(record?.step.rawValue ?? "?"): \(record?.errors.joined(separator: "; ") ?? "")"
            }
        case "daemon-kill":
            note = try killDaemonDuringATakeover(before)
            // The takeover's record, whether the dead daemon filed it or the next one finished it.
            recovery = try waitUntilProtected().lastRecovery
        default:
            guard let injected = Fault(rawValue: fault) else { throw CommandFailure("unknown fault \(fault)") }
            _ = try send(.inject(injected, whenProtectedSeconds: 60), pair: pair)
            let recoveries = before.recoveries
            recovery = try waitFor("the recovery", seconds: 120) { $0.recoveries > recoveries }.lastRecovery
        }
        let judged: [(what: String, outcome: Download.Outcome)] =
            downloads.map { ("download of \($0.resource.url)", $0.finish()) }
            + uploads.map { ("upload to \($0.url)", $0.finish()) }
            + sessions.map { ("keep-alive session", $0.finish()) }
            + pipelines.map { ("pipelined session", $0.finish()) }
        let proxiedJudged = proxied.map { $0.finish() }
        let allJudged = judged + proxiedJudged.flatMap(\.outcomes)
        let answered = requests.finish()
        var result = RoundResult(
            round: number, fault: fault, outcomes: allJudged.map(\.outcome), recovery: recovery,
            protectedAfterSeconds: protectedAfter, note: note)
        var notOK = allJudged.filter { $0.outcome != .ok }.map { "\($0.outcome.rawValue): \($0.what)" }
        if let (backEnd, _) = backEnd {
            let tally = ProxiedTransfers.tally(proxiedJudged, asked: backEnd.timesAsked)
            result.proxied = tally.checked
            result.backEndTwice = tally.twice.count
            result.backEndNever = tally.never.count
            notOK +=
                tally.twice.map { "the back end was asked more than once: \($0)" }
                + tally.never.map { "answered, never asked of the back end: \($0)" }
        }
        result.notOK = notOK.isEmpty ? nil : notOK
        result.requestsOK = answered.ok
        result.requestsFailed = answered.failed
        return result
    }

    /// Where `defaultHTTPS` puts the pair's public key for curl while the campaign runs.
    private var pinnedKeyPath: String { NSTemporaryDirectory() + "ftvm-chaos-\(pair.name)-\(getpid())-pubkey.pem" }

    /// The HTTPS workload a campaign adds by itself when no --url is given and the pair terminates
    /// TLS on a port that leads to the demo service's port 80: a download and session resources
    /// over HTTPS. Without --cacert the server is checked by its public key, pinned from the
    /// certificate the pair's terminator serves (curl --pinnedpubkey; the chain and name are then
    /// not checked).
    private func defaultHTTPS(
        _ status: PairStatus, netns: String
    ) throws -> (download: Resource, session: [Resource], trust: String)? {
        guard let reported = status.tlsPorts, let maps = TLSSetting.portMaps(reported: reported),
            let port = maps.first(where: { $0.guestPort == 80 })
        else { return nil }
        let options: [String]
        let trust: String
        if let cacert {
            options = []
            trust = "verified against \(cacert)"
        } else {
            let bundle = try pair.config().tlsBundlePath
            let key = pinnedKeyPath
            guard
                FileManager.default.createFile(
                    atPath: key, contents: Data(try TLSTerminator.publicKey(certificatePath: bundle).utf8))
            else { throw CommandFailure("cannot write the pair's public key to \(key)") }
            options = ["--insecure", "--pinnedpubkey", key]
            trust = "the server's key pinned from \(bundle); give --cacert to check its chain too"
        }
        let base = "https://\(status.serviceAddress):\(port.publicPort)/bytes/"
        return (
            try Resource.reference(base + "16000000?seed=4", netns: netns, curlOptions: options),
            try (5...6).map { try Resource.reference(base + "2000000?seed=\($0)", netns: netns, curlOptions: options) },
            trust
        )
    }

    /// Injects a kernel panic, SIGKILLs the daemon as soon as its status says it is failing over
    /// (or, when the takeover was quicker than the status polls, just after), and starts it again
    /// with the arguments it ran with. Returns where the kill landed.
    private func killDaemonDuringATakeover(_ before: PairStatus) throws -> String {
        let pid = before.daemonPID
        let arguments = try Self.commandLine(of: pid)
        _ = try send(.inject(.kernelPanic, whenProtectedSeconds: 60), pair: pair)
        var landed = "after the takeover"
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let status = try? send(.status, pair: pair).status, status.phase == "failing-over" {
                landed = "during the takeover"
                break
            }
            if let status = try? send(.status, pair: pair).status, status.recoveries > before.recoveries { break }
            usleep(5_000)
        }
        kill(pid, SIGKILL)
        guard Self.waitUntilGone(pid, seconds: 30) else {
            throw CommandFailure("daemon \(pid) was still there 30 s after SIGKILL")
        }
        let config = try pair.config()
        _ = try DetachedProcess.spawn(arguments, logPath: config.daemonLogPath)
        _ = try waitFor("the restarted daemon", seconds: 120) { _ in true }
        return "daemon \(pid) killed \(landed), started again"
    }

    /// Whether process `pid` is gone within `seconds`. A daemon an earlier round started is this
    /// process's child: it is reaped here, or it would stay a zombie that `kill(pid, 0)` still
    /// finds (the second daemon-kill round of a campaign waited on one for good).
    static func waitUntilGone(_ pid: Int32, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if waitpid(pid, nil, WNOHANG) == pid || kill(pid, 0) != 0 { return true }
            usleep(10_000)
        }
        return false
    }

    static func commandLine(of pid: Int32) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else {
            throw CommandFailure("cannot read the daemon's command line (/proc/\(pid)/cmdline)")
        }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    private func waitUntilProtected() throws -> PairStatus {
        try waitFor("the pair to be protected", seconds: 300) { $0.protected }
    }

    private func waitFor(_ what: String, seconds: Double, _ condition: (PairStatus) -> Bool) throws -> PairStatus {
        let deadline = Date().addingTimeInterval(seconds)
        var last: PairStatus?
        while Date() < deadline {
            if let status = try? send(.status, pair: pair, timeoutSeconds: 10).status {
                if condition(status) { return status }
                last = status
            }
            usleep(100_000)
        }
        throw CommandFailure(
            "chaos: \(what) did not happen within \(Int(seconds)) s (pair \(last?.phase ?? "unreachable"))")
    }
}

/// The line a campaign keeps on a terminal's stderr while a round runs (the round lines and
/// the table go to stdout, so a redirected campaign output has none of it).
struct Progress {
    var total: Int?
    var enabled: Bool

    func show(round: Int, fault: String, elapsed: TimeInterval) {
        write("\r\u{1B}[K\(Self.line(round: round, total: total, fault: fault, elapsed: elapsed))")
    }

    func clear() { write("\r\u{1B}[K") }

    private func write(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func line(round: Int, total: Int?, fault: String, elapsed: TimeInterval) -> String {
        let seconds = Int(elapsed)
        let clock = String(format: "%d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
        return "chaos: round \(round)\(total.map { " of \($0)" } ?? "") (\(fault)) under way, \(clock) elapsed"
    }
}

/// A resource the campaign downloads: its reference digest and length, taken before any fault.
struct Resource {
    var url: String
    var sha256: String
    var length: Int
    /// Two fetches gave the same bytes.
    var reproducible: Bool
    /// What every curl that fetches it adds (an HTTPS resource's trust, when no --cacert is given).
    var curlOptions: [String] = []

    /// Whether a download's bytes are the resource's (by length only, for one that is not
    /// reproducible).
    func matches(_ digest: Digest) -> Bool {
        reproducible ? digest.sha256 == sha256 : digest.length == length
    }

    static func reference(_ url: String, netns: String, curlOptions: [String] = []) throws -> Resource {
        let first = try fetch(url, netns: netns, curlOptions: curlOptions)
        let second = try fetch(url, netns: netns, curlOptions: curlOptions)
        return Resource(
            url: url, sha256: first.sha256, length: first.length, reproducible: first == second,
            curlOptions: curlOptions)
    }

    private static func fetch(_ url: String, netns: String, curlOptions: [String]) throws -> Digest {
        let file = NSTemporaryDirectory() + "ftvm-chaos-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let status = try Download.curl(url, netns: netns, rate: nil, output: file, options: curlOptions).waitForExit()
        guard status == 0 else {
            throw CommandFailure("cannot fetch \(url) from namespace \(netns) (curl exit \(status))")
        }
        return try Digest(file: file)
    }
}

struct Digest: Equatable {
    var sha256: String
    var length: Int

    init(file: String) throws {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [file]
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        sha256 = String(text.prefix(64))
        length = ((try? FileManager.default.attributesOfItem(atPath: file)[.size]) as? Int) ?? 0
    }
}

/// One verified download of a round.
final class Download {
    enum Outcome: String, Codable {
        case ok, reset, cut, wrong, failed
    }

    let resource: Resource
    let netns: String
    let rate: String
    let file = NSTemporaryDirectory() + "ftvm-chaos-\(UUID().uuidString)"
    private var process: Process?

    init(resource: Resource, netns: String, rate: String) {
        self.resource = resource
        self.netns = netns
        self.rate = rate
    }

    static func curl(
        _ url: String, netns: String, rate: String?, output: String, options: [String] = []
    ) throws -> Process {
        try curl(options + ["-o", output] + (rate.map { ["--limit-rate", $0] } ?? []) + [url], netns: netns)
    }

    /// Runs `curl -sS --fail --max-time 600 ARGUMENTS` in namespace `netns` (its stderr
    /// discarded; its stdout to `output`, when given).
    static func curl(_ arguments: [String], netns: String, output: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", netns, "curl", "-sS", "--fail", "--max-time", "600"] + arguments
        if let output { process.standardOutput = output }
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    func start() throws {
        process = try Self.curl(resource.url, netns: netns, rate: rate, output: file, options: resource.curlOptions)
    }

    /// Waits for curl and judges what it received against the reference.
    func finish() -> Outcome {
        guard let process else { return .failed }
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(atPath: file) }
        guard process.terminationStatus == 0 else { return Self.outcome(curlExit: process.terminationStatus) }
        guard let digest = try? Digest(file: file) else { return .failed }
        return resource.matches(digest) ? .ok : .wrong
    }

    /// What a curl that did not succeed says about its connection.
    static func outcome(curlExit: Int32) -> Outcome {
        switch curlExit {
        case 52, 56: .reset  // empty reply, or the connection reset while receiving
        case 18, 28: .cut  // a partial body, or the transfer timed out
        default: .failed
        }
    }

    func stop() {
        if let process, process.isRunning { process.terminate() }
    }
}

/// The body every upload of a campaign sends: seeded bytes in a temporary file, and their digest.
struct UploadBody {
    let file = NSTemporaryDirectory() + "ftvm-chaos-upload-\(UUID().uuidString)"
    let sha256: String

    init(mebibytes: Int, seed: UInt64) throws {
        var random = SplitMix64(seed: seed ^ 0x75_706C_6F61_64)
        var bytes = [UInt8](repeating: 0, count: mebibytes << 20)
        bytes.withUnsafeMutableBytes { buffer in
            for index in stride(from: 0, to: buffer.count, by: 8) {
                withUnsafeBytes(of: random.next().littleEndian) { word in
                    buffer.baseAddress!.advanced(by: index).copyMemory(
                        from: word.baseAddress!, byteCount: min(8, buffer.count - index))
                }
            }
        }
        guard FileManager.default.createFile(atPath: file, contents: Data(bytes)) else {
            throw CommandFailure("cannot write the upload body to \(file)")
        }
        sha256 = try Digest(file: file).sha256
    }

    func remove() { try? FileManager.default.removeItem(atPath: file) }
}

/// One verified upload of a round: the body POSTed (paced, so the fault lands in it), and the
/// answer, which must be the body's SHA-256.
final class Upload {
    let body: UploadBody
    let url: String
    let netns: String
    let rate: String
    private var process: Process?
    private let answer = Pipe()

    init(body: UploadBody, url: String, netns: String, rate: String) {
        self.body = body
        self.url = url
        self.netns = netns
        self.rate = rate
    }

    func start() throws {
        process = try Download.curl(
            [
                "--limit-rate", rate, "-H", "Content-Type: application/octet-stream", "--data-binary",
                "@\(body.file)", url,
            ], netns: netns, output: answer)
    }

    /// Waits for curl and judges the answer against the body's digest.
    func finish() -> Download.Outcome {
        guard let process else { return .failed }
        let text = String(decoding: answer.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return Download.outcome(curlExit: process.terminationStatus) }
        return text.trimmingCharacters(in: .whitespacesAndNewlines) == body.sha256 ? .ok : .wrong
    }

    func stop() {
        if let process, process.isRunning { process.terminate() }
    }
}

/// One keep-alive session of a round: requests one after another on one connection (curl reuses
/// it), each answer verified like a download. curl silently opens a new connection when the one
/// it kept was closed, which would hide a reset between requests: each transfer's
/// `num_connects` says whether it did, and any after the first counts the session as reset.
final class Session {
    let resources: [Resource]
    let netns: String
    let rate: String
    let files: [String]
    private var process: Process?
    private let report = Pipe()

    init(resources: [Resource], netns: String, rate: String) {
        self.resources = resources
        self.netns = netns
        self.rate = rate
        files = resources.map { _ in NSTemporaryDirectory() + "ftvm-chaos-session-\(UUID().uuidString)" }
    }

    func start() throws {
        let transfers = zip(resources, files).flatMap { resource, file in ["-o", file, resource.url] }
        // A session's resources are on one server: the first one's trust serves them all.
        process = try Download.curl(
            (resources.first?.curlOptions ?? []) + ["--limit-rate", rate, "-w", "%{num_connects}\\n"] + transfers,
            netns: netns, output: report)
    }

    /// Waits for curl and judges the session: every answer byte-exact, on one connection.
    func finish() -> Download.Outcome {
        guard let process else { return .failed }
        let connects = String(decoding: report.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").compactMap { Int($0) }
        process.waitUntilExit()
        defer { files.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        guard process.terminationStatus == 0 else { return Download.outcome(curlExit: process.terminationStatus) }
        return Self.outcome(answers: Self.answers(resources, in: files), connects: connects)
    }

    /// Each answer, in `files`, judged against its resource.
    static func answers(_ resources: [Resource], in files: [String]) -> [Download.Outcome] {
        zip(resources, files).map { resource, file in
            (try? Digest(file: file)).map { resource.matches($0) ? Download.Outcome.ok : .wrong } ?? .failed
        }
    }

    /// A session's outcome from its answers alone: wrong if any answer is, else the first that
    /// is not ok.
    static func outcome(answers: [Download.Outcome]) -> Download.Outcome {
        answers.contains(.wrong) ? .wrong : answers.first { $0 != .ok } ?? .ok
    }

    /// The session's outcome from its answers' and its connections' (`num_connects` per transfer).
    static func outcome(answers: [Download.Outcome], connects: [Int]) -> Download.Outcome {
        let judged = outcome(answers: answers)
        guard judged == .ok else { return judged }
        guard connects.count == answers.count else { return .failed }
        return connects.dropFirst().allSatisfy { $0 == 0 } ? .ok : .reset
    }

    func stop() {
        if let process, process.isRunning { process.terminate() }
    }
}

/// One pipelined session of a round: `ftvm pipeline` (this executable) in the clients' namespace
/// writes every request at once on one connection and reads the answers in order, paced; each
/// answer is verified like a download. A reset anywhere counts the session as reset.
final class PipelinedSession {
    let resources: [Resource]
    let netns: String
    let bytesPerSecond: Int
    let prefix = NSTemporaryDirectory() + "ftvm-chaos-pipeline-\(UUID().uuidString)"
    private var process: Process?

    init(resources: [Resource], netns: String, bytesPerSecond: Int) {
        self.resources = resources
        self.netns = netns
        self.bytesPerSecond = bytesPerSecond
    }

    /// This ftvm's path, resolved when the campaign starts: once a package upgrade or a rebuild
    /// replaces the file, `/proc/self/exe` names it "PATH (deleted)", which cannot be run, and
    /// every later pipelined session failed (seen in a campaign, 2026-12-07). The path itself
    /// then holds the new ftvm, whose `pipeline` is the same client.
    static let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "ip", "netns", "exec", netns, Self.executable, "pipeline", "--rate", "\(bytesPerSecond)", "--output",
                prefix,
            ]
            + resources.map(\.url)
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    /// Waits for the client and judges the session: every answer byte-exact.
    func finish() -> Download.Outcome {
        guard let process else { return .failed }
        process.waitUntilExit()
        let files = resources.indices.map { "\(prefix).\($0)" }
        defer { files.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        guard process.terminationStatus == 0 else { return Download.outcome(curlExit: process.terminationStatus) }
        return Session.outcome(answers: Session.answers(resources, in: files))
    }

    func stop() {
        if let process, process.isRunning { process.terminate() }
    }
}

/// Small requests (HEAD), one after another, while a round's downloads run: a request-rate load,
/// and new connections whose SYNs a dead data path leaves unanswered (how a stuck NIC shows when
/// the downloads' clients only acknowledge). Each answer must be a 2xx.
final class RequestLoop: Sendable {
    private struct Tally {
        var ok = 0
        var failed = 0
        var stop = false
        var done = false
    }

    let url: String
    let netns: String
    private let tally = Mutex(Tally())

    init(url: String, netns: String) {
        self.url = url
        self.netns = netns
    }

    func start() {
        Thread { [self] in
            while !tally.withLock({ $0.stop }) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = [
                    "ip", "netns", "exec", netns, "curl", "-sS", "--fail", "--head", "--max-time", "60", "-o",
                    "/dev/null", url,
                ]
                process.standardError = FileHandle.nullDevice
                let ok = (try? process.run()).map { process.waitForExit() == 0 } ?? false
                tally.withLock { ok ? ($0.ok += 1) : ($0.failed += 1) }
                usleep(100_000)
            }
            tally.withLock { $0.done = true }
        }.start()
    }

    /// Stops after the request in flight; returns the tally.
    func finish() -> (ok: Int, failed: Int) {
        tally.withLock { $0.stop = true }
        while !tally.withLock({ $0.done }) { usleep(20_000) }
        return tally.withLock { ($0.ok, $0.failed) }
    }
}

extension Process {
    func waitForExit() -> Int32 {
        waitUntilExit()
        return terminationStatus
    }
}

struct RoundResult: Codable {
    var round: Int
    var fault: String
    var ok = 0, reset = 0, cut = 0, wrong = 0, failed = 0
    /// The small requests of the round: answered with a 2xx, or not.
    var requestsOK = 0, requestsFailed = 0
    var detectMillis: Double?
    var takeoverMillis: Double?
    var spliced: Int?
    var replayResets: Int?
    var recoveryError: String?
    var protectedAfterSeconds: Double
    var note: String?
    /// Which transfers were not ok, and how ("cut: download of URL"), so a failed round says
    /// what to look at.
    var notOK: [String]?
    /// Proxied requests checked at the counting back end (--backend), and those it was asked
    /// more than once, or never though their client was answered.
    var proxied: Int?, backEndTwice: Int?, backEndNever: Int?

    init(
        round: Int, fault: String, outcomes: [Download.Outcome], recovery: RecoveryRecord?,
        protectedAfterSeconds: Double, note: String?
    ) {
        self.round = round
        self.fault = fault
        for outcome in outcomes {
            switch outcome {
            case .ok: ok += 1
            case .reset: reset += 1
            case .cut: cut += 1
            case .wrong: wrong += 1
            case .failed: failed += 1
            }
        }
        detectMillis = recovery?.detectMillis
        takeoverMillis = recovery?.phases.first { $0.name == RecoveryPhase.firstPacket.rawValue }?.sinceDetectionMillis
        spliced = recovery?.replay?.spliced
        replayResets = recovery?.replay?.reset
        recoveryError = recovery?.error
        self.protectedAfterSeconds = (protectedAfterSeconds * 10).rounded() / 10
        self.note = note
    }

    var lost: Int { reset + cut + wrong + failed + requestsFailed }

    /// Requests the back end was asked twice or never (answered from the log): each is a fault's
    /// mark on the end server, which a run without it would not have left.
    var backEndMiscounted: Int { (backEndTwice ?? 0) + (backEndNever ?? 0) }

    var line: String {
        let timing = [
            detectMillis.map { String(format: "detect %.0f ms", $0) },
            takeoverMillis.map { String(format: "takeover %.0f ms", $0) },
        ].compactMap { $0 }.joined(separator: ", ")
        return "[\(round)] \(fault.padding(13)) ok \(ok) reset \(reset) cut \(cut) WRONG \(wrong) failed \(failed)"
            + "  requests \(requestsOK) ok \(requestsFailed) failed  "
            + (proxied.map { "back end \($0) proxied \(backEndTwice ?? 0) twice \(backEndNever ?? 0) never  " } ?? "")
            + timing
            + (recoveryError.map { "  error: \($0)" } ?? "") + (note.map { "  (\($0))" } ?? "")
            + (notOK.map { "  not ok: " + $0.joined(separator: "; ") } ?? "")
    }
}

struct Summary: Codable {
    struct Row: Codable {
        var fault: String
        var rounds = 0, ok = 0, reset = 0, cut = 0, wrong = 0, failed = 0, requestsOK = 0, requestsFailed = 0
        var detectP50: Double?, detectMax: Double?, takeoverP50: Double?, takeoverMax: Double?
    }

    var seed: UInt64
    var faults: [Row]
    var connections: Int
    var requests: Int
    var lost: Int
    var wrong: Int
    var recoveryErrors: Int
    /// Proxied requests checked at the counting back end, and those asked twice or never.
    var proxied: Int?, backEndTwice: Int?, backEndNever: Int?
    var passed: Bool

    init(seed: UInt64, results: [RoundResult]) {
        self.seed = seed
        var rows: [String: Row] = [:]
        for result in results {
            var row = rows[result.fault] ?? Row(fault: result.fault)
            row.rounds += 1
            row.ok += result.ok
            row.reset += result.reset
            row.cut += result.cut
            row.wrong += result.wrong
            row.failed += result.failed
            row.requestsOK += result.requestsOK
            row.requestsFailed += result.requestsFailed
            rows[result.fault] = row
        }
        for (fault, var row) in rows {
            let detect = results.filter { $0.fault == fault }.compactMap(\.detectMillis).sorted()
            let takeover = results.filter { $0.fault == fault }.compactMap(\.takeoverMillis).sorted()
            row.detectP50 = detect.isEmpty ? nil : detect[detect.count / 2]
            row.detectMax = detect.last
            row.takeoverP50 = takeover.isEmpty ? nil : takeover[takeover.count / 2]
            row.takeoverMax = takeover.last
            rows[fault] = row
        }
        faults = rows.values.sorted { $0.fault < $1.fault }
        connections = results.reduce(0) { $0 + $1.ok + $1.reset + $1.cut + $1.wrong + $1.failed }
        requests = results.reduce(0) { $0 + $1.requestsOK + $1.requestsFailed }
        lost = results.reduce(0) { $0 + $1.lost }
        wrong = results.reduce(0) { $0 + $1.wrong }
        recoveryErrors = results.count { $0.recoveryError != nil }
        if results.contains(where: { $0.proxied != nil }) {
            proxied = results.reduce(0) { $0 + ($1.proxied ?? 0) }
            backEndTwice = results.reduce(0) { $0 + ($1.backEndTwice ?? 0) }
            backEndNever = results.reduce(0) { $0 + ($1.backEndNever ?? 0) }
        }
        passed = lost == 0 && recoveryErrors == 0 && results.allSatisfy { $0.backEndMiscounted == 0 }
    }

    func printTable() {
        print("")
        print(
            "fault          rounds     ok  reset    cut  WRONG failed  requests ok/failed  detect p50/max ms  takeover p50/max ms"
        )
        func ms(_ value: Double?) -> String { value.map { String(format: "%.0f", $0) } ?? "-" }
        for row in faults {
            let counts = [row.rounds, row.ok, row.reset, row.cut, row.wrong, row.failed].map {
                String($0).padding(6, right: true)
            }
            print(
                row.fault.padding(13) + " " + counts.joined(separator: " ") + "  "
                    + "\(row.requestsOK)/\(row.requestsFailed)".padding(18, right: true) + "  "
                    + "\(ms(row.detectP50))/\(ms(row.detectMax))".padding(17, right: true) + "  "
                    + "\(ms(row.takeoverP50))/\(ms(row.takeoverMax))".padding(19, right: true))
        }
        print(
            "verdict: \(passed ? "PASS" : "FAIL") — \(connections) transfers (downloads, uploads, sessions, pipelined sessions) and \(requests) requests, \(lost) lost (\(wrong) with wrong bytes), \(recoveryErrors) recoveries with errors"
                + (proxied.map {
                    "; \($0) proxied requests, \(backEndTwice ?? 0) asked of the back end twice, \(backEndNever ?? 0) answered but never asked"
                } ?? "") + "; seed \(seed)"
        )
    }
}

extension String {
    /// Padded with spaces to `width` (on the left when `right`-aligned).
    func padding(_ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - count))
        return right ? fill + self : self + fill
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}

extension Optional {
    func unwrapped(_ what: String) throws -> Wrapped {
        guard let self else { throw CommandFailure(what) }
        return self
    }
}
