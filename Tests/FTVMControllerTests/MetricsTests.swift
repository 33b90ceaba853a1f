import FTVMSystem
import Foundation
import PrometheusText
import SystemPackage
import XCTest

@testable import FTVMController

/// The daemon's Prometheus exposition, read back with the tests' own strict parser.
final class MetricsExpositionTests: XCTestCase {
    private func scrape(_ metrics: PairMetrics, _ sample: MetricsSample = MetricsSample()) throws -> Exposition {
        try Exposition(String(decoding: metrics.exposition(of: sample), as: UTF8.self))
    }

    /// Every catalog metric is there with its type and help, nothing else is, every sample
    /// carries the pair, and the names follow Prometheus' conventions.
    func testEveryMetricIsDeclaredAndNamedByConvention() throws {
        var sample = MetricsSample()
        sample.heartbeats = [.init(domain: "ftvm-t-1", role: "primary", ageNanos: 5_000_000)]
        let exposition = try scrape(PairMetrics(pair: "t"), sample)
        XCTAssertEqual(Set(exposition.families.keys), Set(MetricCatalog.all.map(\.name)))
        for metric in MetricCatalog.all {
            let family = try XCTUnwrap(exposition.families[metric.name], metric.name)
            XCTAssertEqual(family.type, metric.kind.rawValue, metric.name)
            XCTAssertEqual(family.help, metric.help, metric.name)
            XCTAssertFalse(family.samples.isEmpty, "\(metric.name) has no series")
            for sample in family.samples {
                XCTAssertEqual(sample.labels["pair"], "t", sample.name)
                var expected = Set(["pair"] + metric.labels)
                if sample.name.hasSuffix("_bucket") { expected.insert("le") }
                XCTAssertEqual(Set(sample.labels.keys), expected, sample.name)
            }
            XCTAssertTrue(metric.name.hasPrefix("ftvm_"), metric.name)
            XCTAssertEqual(metric.kind == .counter, metric.name.hasSuffix("_total"), metric.name)
            if metric.kind == .histogram { XCTAssertTrue(metric.name.hasSuffix("_seconds"), metric.name) }
            if metric.help.contains("in seconds") { XCTAssertTrue(metric.name.hasSuffix("_seconds"), metric.name) }
            if metric.help.contains("bytes") && metric.kind == .gauge {
                XCTAssertTrue(metric.name.hasSuffix("_bytes"), metric.name)
            }
        }
    }

    /// A recovery counts once under its cause, and each phase lands in its histogram with the
    /// seconds the phase took.
    func testRecoveryCountsAndPhaseHistograms() throws {
        let metrics = PairMetrics(pair: "t")
        let before = try scrape(metrics)
        XCTAssertEqual(before.value("ftvm_recoveries_total", ["cause": "kernel_panic"]), 0)
        XCTAssertEqual(before.value("ftvm_recovery_phase_seconds_count", ["phase": "fence"]), 0)

        let millis: [Double] = [21.5, 0.05, 12, 9000, 140, 310, 2.25]
        let phases = zip(PairMetrics.phases, millis).map { name, value in
            RecoveryRecord.Phase(name: name, millis: value, sinceDetectionMillis: 0)
        }
        metrics.recordFailure(.kernelPanic)
        metrics.recordDetection(fault: "kernel-panic", millis: 85)
        metrics.record(phases: phases)
        metrics.record(phases: [RecoveryRecord.Phase(name: "re-protected", millis: 61_000, sinceDetectionMillis: 0)])
        let after = try scrape(metrics)
        XCTAssertEqual(after.value("ftvm_recoveries_total", ["cause": "kernel_panic"]), 1)
        XCTAssertEqual(after.value("ftvm_recoveries_total", ["cause": "manual"]), 0)
        XCTAssertEqual(after.value("ftvm_detection_seconds_count", ["fault": "kernel-panic"]), 1)
        XCTAssertEqual(
            try XCTUnwrap(after.value("ftvm_detection_seconds_sum", ["fault": "kernel-panic"])), 0.085, accuracy: 1e-9)
        for (name, value) in zip(PairMetrics.phases, millis + [61_000]) {
            XCTAssertEqual(after.value("ftvm_recovery_phase_seconds_count", ["phase": name]), 1, name)
            let sum = try XCTUnwrap(after.value("ftvm_recovery_phase_seconds_sum", ["phase": name]), name)
            XCTAssertEqual(sum, value / 1000, accuracy: 1e-9, name)
            // The smallest bucket bound at or above the value holds it; the one below does not.
            let bound = try XCTUnwrap(MetricCatalog.bucketSeconds.first { $0 >= value / 1000 })
            XCTAssertEqual(
                after.value("ftvm_recovery_phase_seconds_bucket", ["phase": name, "le": "\(bound)"]), 1, name)
            if let below = MetricCatalog.bucketSeconds.last(where: { $0 < value / 1000 }) {
                XCTAssertEqual(
                    after.value("ftvm_recovery_phase_seconds_bucket", ["phase": name, "le": "\(below)"]), 0, name)
            }
        }
    }

    /// Mirrored counters equal their source totals at every scrape (not the sum of samples),
    /// gauges follow the state, and a guest that is gone loses its heartbeat series.
    func testSampledValuesMirrorTheDaemon() throws {
        let metrics = PairMetrics(pair: "t")
        var sample = MetricsSample(protected: true)
        sample.relay.framesToGuest = 10
        sample.relay.bytesToClients = 1500
        sample.replay.resets[.outputDiffers] = 2
        sample.log = .init(
            protectedOpen: 3, unprotectedOpen: 1, heldBytes: 4096, capacityBytes: 128 << 20, connectionsLogged: 9,
            overBudget: 1, logFull: 0, noSlot: 0)
        sample.heartbeats = [
            .init(domain: "ftvm-t-1", role: "primary", ageNanos: 20_000_000),
            .init(domain: "ftvm-t-2", role: "backup", ageNanos: 3_000_000_000),
        ]
        var exposition = try scrape(metrics, sample)
        XCTAssertEqual(exposition.value("ftvm_protected"), 1)
        XCTAssertEqual(exposition.value("ftvm_relay_frames_total", ["direction": "to_guest"]), 10)
        XCTAssertEqual(exposition.value("ftvm_relay_bytes_total", ["direction": "to_clients"]), 1500)
        XCTAssertEqual(exposition.value("ftvm_replay_resets_total", ["reason": "output_differs"]), 2)
        XCTAssertEqual(exposition.value("ftvm_connections_open", ["protection": "protected"]), 3)
        XCTAssertEqual(exposition.value("ftvm_connections_open", ["protection": "unprotected"]), 1)
        XCTAssertEqual(exposition.value("ftvm_log_capacity_bytes"), Double(128 << 20))
        XCTAssertEqual(exposition.value("ftvm_heartbeat_age_seconds", ["domain": "ftvm-t-2"]), 3)

        sample.protected = false
        sample.relay.framesToGuest = 25
        sample.heartbeats = [.init(domain: "ftvm-t-2", role: "primary", ageNanos: 10_000_000)]
        exposition = try scrape(metrics, sample)
        XCTAssertEqual(exposition.value("ftvm_protected"), 0)
        XCTAssertEqual(exposition.value("ftvm_relay_frames_total", ["direction": "to_guest"]), 25)
        XCTAssertEqual(exposition.value("ftvm_heartbeat_age_seconds", ["domain": "ftvm-t-2", "role": "primary"]), 0.01)
        let series = exposition.families["ftvm_heartbeat_age_seconds"]?.samples.map { $0.labels["domain"] ?? "" }
        XCTAssertEqual(series, ["ftvm-t-2"])
    }

    func testEveryCauseHasADeclaredLabel() {
        let causes: [FailureCause] = [
            .heartbeatStalled(millis: 1), .dataPathStalled(millis: 1), .kernelPanic, .qemuDied(reason: ""),
            .serviceFailed(name: "", exit: 1), .serviceHung(name: ""), .agentFailed, .pausedOutside(how: ""), .manual,
        ]
        XCTAssertEqual(causes.map(\.label), FailureCause.labels)
    }

    /// docs/metrics.md documents every metric.
    func testDocsListEveryMetric() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../docs/metrics.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        for metric in MetricCatalog.all {
            XCTAssertTrue(text.contains("`\(metric.name)`"), "docs/metrics.md does not document \(metric.name)")
        }
    }
}

/// The parser itself must reject what a scraper would.
final class PrometheusTextParserTests: XCTestCase {
    func testRejectsMalformedExpositions() {
        let bad = [
            "# TYPE a counter\na 1",  // no final newline
            "# TYPE 1a counter\n",  // bad metric name
            "# TYPE a counter\n# TYPE a counter\n",  // second TYPE
            "a 1\n# TYPE a counter\n",  // TYPE after samples
            "# TYPE a counter\na{1x=\"v\"} 1\n",  // bad label name
            "# TYPE a counter\na{x=\"v\\q\"} 1\n",  // bad escape
            "# TYPE a counter\na{x=v} 1\n",  // unquoted value
            "# TYPE a counter\na{x=\"v\",x=\"w\"} 1\n",  // label twice
            "# TYPE a counter\na one\n",  // bad value
            "# TYPE a counter\na 1\na 2\n",  // duplicate series
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"y\"} 1\n",  // not contiguous
            // Buckets not cumulative:
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",  // +Inf != count
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  // no +Inf
        ]
        for text in bad {
            XCTAssertThrowsError(try Exposition(text), text)
        }
    }

    func testReadsWellFormedExposition() throws {
        let text = """
            # HELP a A \\\\ counter.
            # TYPE a counter
            a{x="q\\"uote",y="new\\nline"} 3 1700000000000
            # TYPE h histogram
            h_bucket{le="0.5"} 1
            h_bucket{le="+Inf"} 2
            h_sum 1.5e0
            h_count 2

            """
        let exposition = try Exposition(text)
        XCTAssertEqual(exposition.families["a"]?.help, "A \\ counter.")
        XCTAssertEqual(exposition.value("a", ["x": "q\"uote", "y": "new\nline"]), 3)
        XCTAssertEqual(exposition.value("h_count"), 2)
        XCTAssertEqual(exposition.value("h_bucket", ["le": "+Inf"]), 2)
    }
}

final class MetricsEndpointTests: XCTestCase {
    func testParsesOperatorAddresses() {
        XCTAssertEqual(MetricsSetting(parsing: "none"), .off)
        XCTAssertEqual(
            MetricsSetting(parsing: "127.0.0.1:9477"), .at(IPv4Endpoint(hostOrderAddress: 0x7F00_0001, port: 9477)))
        XCTAssertEqual(MetricsSetting(parsing: "0.0.0.0:80"), .at(IPv4Endpoint(hostOrderAddress: 0, port: 80)))
        for bad in ["", "localhost:9477", "1.2.3:4", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.256:1", "::1:80"] {
            XCTAssertNil(MetricsSetting(parsing: bad), bad)
        }
        XCTAssertEqual(IPv4Endpoint("10.1.2.3:8080")?.description, "10.1.2.3:8080")
        XCTAssertEqual(MetricsSetting.automatic.argument, nil)
        XCTAssertEqual(MetricsSetting(parsing: "127.0.0.2:1")?.argument, "127.0.0.2:1")
    }

    /// An explicit address that is taken fails; the automatic setting moves on to the next port
    /// of its range, and says so when none is left.
    func testBindingATakenPort() throws {
        let taken = try TCPListener(IPv4Endpoint(hostOrderAddress: 0x7F00_0001, port: 0))
        let free = try TCPListener(IPv4Endpoint(hostOrderAddress: 0x7F00_0001, port: 0)).address.port
        XCTAssertThrowsError(try MetricsSetting.at(taken.address).bind()) { error in
            XCTAssertEqual(error as? MetricsError, .cannotBind(taken.address, .addressInUse))
        }
        let next = try XCTUnwrap(MetricsSetting.automatic.bind(automaticPorts: [taken.address.port, free]))
        XCTAssertEqual(next.address.port, free)
        XCTAssertThrowsError(try MetricsSetting.automatic.bind(automaticPorts: [taken.address.port])) { error in
            XCTAssertEqual(error as? MetricsError, .noFreeAutomaticPort([taken.address.port]))
        }
        XCTAssertNil(try MetricsSetting.off.bind())
    }

    func testHTTPAnswers() {
        let body = Array("x 1\n".utf8)
        func answer(_ line: String) -> String {
            String(decoding: MetricsServer.response(to: line) { body }, as: UTF8.self)
        }
        let ok = answer("GET /metrics HTTP/1.1\r")
        XCTAssertTrue(ok.hasPrefix("HTTP/1.1 200 OK\r\n"), ok)
        XCTAssertTrue(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), ok)
        XCTAssertTrue(ok.contains("Content-Length: 4\r\n"), ok)
        XCTAssertTrue(ok.hasSuffix("\r\n\r\nx 1\n"), ok)
        XCTAssertTrue(answer("GET /metrics?x=1 HTTP/1.0").hasPrefix("HTTP/1.1 200"))
        XCTAssertTrue(answer("HEAD /metrics HTTP/1.1").hasSuffix("\r\n\r\n"))
        XCTAssertTrue(answer("GET / HTTP/1.1").hasPrefix("HTTP/1.1 404"))
        XCTAssertTrue(answer("POST /metrics HTTP/1.1").hasPrefix("HTTP/1.1 405"))
        XCTAssertTrue(answer("GET /metrics").hasPrefix("HTTP/1.1 400"))
        XCTAssertTrue(answer("\u{16}\u{03}\u{01}").hasPrefix("HTTP/1.1 400"))
    }

    /// The heartbeat clock measures from the last change it saw, and forgets guests that left.
    func testHeartbeatClock() {
        let clock = HeartbeatClock()
        clock.observe([("a", 1), ("b", 7)], now: 1_000)
        clock.observe([("a", 2), ("b", 7)], now: 5_000)
        XCTAssertEqual(clock.ages(now: 6_000), ["a": 1_000, "b": 5_000])
        clock.observe([("b", 7)], now: 7_000)
        XCTAssertEqual(clock.ages(now: 7_000), ["b": 6_000])
    }
}
