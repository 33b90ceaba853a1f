import FTVMWire
import Foundation
import XCTest

@testable import FTVMController

/// HTTPS on the host: the tls settings as a file and the options give them, every mistake in
/// them, HAProxy's configuration, and the checks of the certificate and key files (made here
/// with openssl) before anything is started.
final class TLSSettingTests: XCTestCase {

    func testAFileSetsPortsCertificateKeyAndTheDefaultSource() throws {
        let tls = try XCTUnwrap(
            try resolveSettings(
                """
                tls:
                  ports: [443:8081, "8443:80"]
                  cert: /etc/ftvm/site.pem
                  key: /etc/ftvm/site.key
                """
            ).config.tls)
        XCTAssertEqual(tls.ports.map(\.description), ["443:8081", "8443:80"])
        XCTAssertEqual(tls.certificatePath, "/etc/ftvm/site.pem")
        XCTAssertEqual(tls.keyPath, "/etc/ftvm/site.key")
        XCTAssertEqual(tls.backAddress, "10.77.0.254", "the last host of the service's /24")
        XCTAssertNil(try resolveSettings("name: x").config.tls, "no tls section, no HTTPS")
    }

    func testOptionsSetTheSameAsTheFile() throws {
        var options = PairSettings()
        options.set(.tlsPorts, .text("443:8081,8443:80"), from: .option("--tls-port"))
        options.set(.tlsCertificate, .text("/c.pem"), from: .option("--tls-cert"))
        options.set(.tlsKey, .text("/k.pem"), from: .option("--tls-key"))
        options.set(.tlsSource, .text("10.77.0.200"), from: .option("--tls-source"))
        let tls = try XCTUnwrap(try options.resolve().config.tls)
        XCTAssertEqual(tls.ports.map(\.description), ["443:8081", "8443:80"])
        XCTAssertEqual(tls.backAddress, "10.77.0.200")
    }

    /// What `ftvm status` reports (`tlsPorts`) reads back as the port maps (`ftvm chaos` does).
    func testReportedPortMapsReadBack() {
        let maps = TLSSetting.portMaps(reported: "443:80,8443:8081")
        XCTAssertEqual(maps?.map(\.description), ["443:80", "8443:8081"])
        XCTAssertEqual(maps?.first { $0.guestPort == 80 }?.publicPort, 443)
        XCTAssertNil(TLSSetting.portMaps(reported: ""))
        XCTAssertNil(TLSSetting.portMaps(reported: "443"))
    }

    func testMistakesSayWhatIsWrong() {
        let files = "  cert: /c.pem\n  key: /k.pem\n"
        XCTAssertTrue(
            settingsFailure("tls:\n  ports: [443:8081]\n  cert: /c.pem\n").contains(
                "--tls-key (tls.key in a file) is missing"))
        XCTAssertTrue(settingsFailure("tls:\n  ports: [443]\n" + files).contains("'443' is not PUBLIC:GUEST"))
        XCTAssertTrue(settingsFailure("tls:\n  ports: ['443:0']\n" + files).contains("is not PUBLIC:GUEST"))
        XCTAssertTrue(settingsFailure("tls:\n  ports: ['443:80', '443:81']\n" + files).contains("443 is given twice"))
        XCTAssertTrue(settingsFailure("tls:\n  ports: {a: 1}\n" + files).contains("must be a list of PUBLIC:GUEST"))
        XCTAssertTrue(
            settingsFailure("tls:\n  ports: ['443:80']\n  cert: site.pem\n  key: /k.pem\n").contains(
                "'site.pem' must be an absolute path"))
        XCTAssertTrue(
            settingsFailure("tls:\n  ports: ['443:80']\n" + files + "  source: 10.78.0.9\n").contains(
                "10.78.0.9 is not in the service's /24"))
        XCTAssertTrue(
            settingsFailure("tls:\n  ports: ['443:80']\n" + files + "  source: 10.77.0.2\n").contains(
                "is taken by the service")
        )
        XCTAssertTrue(
            settingsFailure("tls:\n  ports: ['443:80']\n" + files + "  source: 10.77.0.1\n").contains(
                "is taken by the uplink"))
        XCTAssertTrue(
            settingsFailure("tls:\n  ports: ['443:80']\n" + files + "  sorce: 10.77.0.9\n").contains("tls.source"))
    }

    func testTheBackSidesAddressAndMAC() throws {
        XCTAssertEqual(TLSSetting.defaultBackAddress(service: "192.168.5.70", prefixLength: 26), "192.168.5.126")
        XCTAssertEqual(TLSSetting.defaultBackAddress(service: "10.0.0.1", prefixLength: 30), "10.0.0.2")
        let mac = TLSSetting.backMAC(service: try XCTUnwrap(MACAddress("52:54:00:77:00:02")))
        XCTAssertEqual(mac.description, "56:54:00:77:00:02")
        XCTAssertFalse(mac.isMulticast)
    }

    func testHAProxysConfiguration() throws {
        var config = try PairConfig(name: "web")
        config.tls = TLSSetting(
            ports: [.init(publicPort: 443, guestPort: 8081)], certificatePath: "/c.pem", keyPath: "/k.pem",
            backAddress: "10.77.0.254")
        let text = TLSTerminator.configuration(config: config, tls: try XCTUnwrap(config.tls))
        XCTAssertTrue(
            text.contains(
                "bind 10.77.0.2:443 namespace ftvm-web-tlsf ssl crt /run/ftvm/web/tls.pem alpn http/1.1"))
        XCTAssertTrue(text.contains("server guest 10.77.0.2:8081 namespace ftvm-web-tlsb"))
        XCTAssertTrue(text.contains("http-reuse never"), "one server connection per client connection")
        XCTAssertTrue(text.contains("option forwardfor"))
        XCTAssertTrue(text.contains("ssl-min-ver TLSv1.2"))
        XCTAssertFalse(text.contains("/k.pem"), "HAProxy reads the root-only bundle, not the operator's files")
    }

    // MARK: The files

    private var directory = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            throw XCTSkip("openssl is not installed (scripts/setup.sh installs it)")
        }
        directory = NSTemporaryDirectory() + "ftvm-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// A self-signed certificate and its key, valid for `days` (negative: expired), key mode 600.
    private func certificate(_ name: String, days: Int) throws -> (certificate: String, key: String) {
        let key = "\(directory)/\(name).key"
        let certificate = "\(directory)/\(name).pem"
        try HostCommand.run([
            "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
            "-out", "\(directory)/\(name).csr", "-subj", "/CN=\(name)",
        ])
        try HostCommand.run([
            "openssl", "x509", "-req", "-in", "\(directory)/\(name).csr", "-signkey", key, "-out", certificate,
            "-days", "\(days)",
        ])
        chmod(key, 0o600)
        return (certificate, key)
    }

    private func setting(_ certificate: String, _ key: String) -> TLSSetting {
        TLSSetting(
            ports: [.init(publicPort: 443, guestPort: 80)], certificatePath: certificate, keyPath: key,
            backAddress: "10.77.0.254")
    }

    private func checkFailure(_ tls: TLSSetting, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let warnings = try TLSTerminator.check(tls)
            XCTFail("expected an error, got warnings \(warnings)", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testAGoodPairOfFilesPasses() throws {
        guard FileManager.default.isExecutableFile(atPath: TLSTerminator.haproxy) else {
            throw XCTSkip("haproxy is not installed (scripts/setup.sh installs it)")
        }
        let good = try certificate("good", days: 365)
        XCTAssertEqual(try TLSTerminator.check(setting(good.certificate, good.key)), [])
    }

    func testBadFilesAreRefusedWithWhatToDo() throws {
        guard FileManager.default.isExecutableFile(atPath: TLSTerminator.haproxy) else {
            throw XCTSkip("haproxy is not installed (scripts/setup.sh installs it)")
        }
        let good = try certificate("good", days: 365)
        let other = try certificate("other", days: 365)
        XCTAssertTrue(
            checkFailure(setting(good.certificate, other.key)).contains("does not match the certificate"))
        XCTAssertTrue(checkFailure(setting(good.certificate, "\(directory)/none.key")).contains("cannot read"))
        XCTAssertTrue(checkFailure(setting(good.key, good.key)).contains("is not a PEM certificate"))
        // (A file given as the key must be private before its contents are judged.)
        XCTAssertTrue(checkFailure(setting(other.certificate, other.certificate)).contains("chmod 600"))
        chmod(other.certificate, 0o600)
        XCTAssertTrue(checkFailure(setting(other.certificate, other.certificate)).contains("is not a PEM private key"))
        chmod(good.key, 0o644)
        XCTAssertTrue(checkFailure(setting(good.certificate, good.key)).contains("chmod 600"))
    }

    func testAnExpiredOrExpiringCertificateIsAWarningWithItsDate() throws {
        guard FileManager.default.isExecutableFile(atPath: TLSTerminator.haproxy) else {
            throw XCTSkip("haproxy is not installed (scripts/setup.sh installs it)")
        }
        let expired = try certificate("expired", days: -1)
        let warnings = try TLSTerminator.check(setting(expired.certificate, expired.key))
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings.first?.contains("expired on") == true, "\(warnings)")
        XCTAssertTrue(warnings.first?.contains("GMT") == true, "the date is given: \(warnings)")
        let soon = try certificate("soon", days: 5)
        XCTAssertTrue(
            try TLSTerminator.check(setting(soon.certificate, soon.key)).first?.contains("within 30 days") == true)
    }
}
