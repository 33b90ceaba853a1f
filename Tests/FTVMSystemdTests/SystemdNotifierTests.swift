import FTVMSystem
import FTVMSystemd
import Foundation
import SystemPackage
import XCTest

/// sd_notify datagrams, received on a socket the test binds where systemd's would be.
final class SystemdNotifierTests: XCTestCase {
    func testReadyAndStatusDatagramsOnAPathSocket() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ftvm-notify-\(getpid()).sock").path
        let systemd = try UnixDatagram(bindingTo: path)
        let notifier = try XCTUnwrap(try SystemdNotifier(environment: ["NOTIFY_SOCKET": path]))
        try notifier.ready(status: "pair hcfg: protected")
        XCTAssertEqual(
            try systemd.receive(timeoutSeconds: 2), Array("READY=1\nSTATUS=pair hcfg: protected\n".utf8))
        // A newline in a value would start an assignment of its own: it becomes a space.
        try notifier.status("two\nlines")
        XCTAssertEqual(try systemd.receive(timeoutSeconds: 2), Array("STATUS=two lines\n".utf8))
        try notifier.stopping(status: "going")
        XCTAssertEqual(try systemd.receive(timeoutSeconds: 2), Array("STOPPING=1\nSTATUS=going\n".utf8))
        XCTAssertNil(try systemd.receive(timeoutSeconds: 0.05), "one datagram per notification")
    }

    /// systemd writes an abstract address as '@name': the socket has no file, and the kernel
    /// lists it as '@name' in /proc/net/unix (an independent view of what was bound).
    func testAbstractNamespaceSocket() throws {
        let name = "ftvm-notify-test-\(getpid())"
        let systemd = try UnixDatagram(bindingTo: "@\(name)")
        // Read to the end: /proc files report size 0, and a sized read stops at the first page.
        let table = String(
            decoding: try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/net/unix")).readToEnd() ?? Data(), as: UTF8.self
        )
        XCTAssertTrue(
            table.split(separator: "\n").contains { $0.hasSuffix(" @\(name)") },
            "not bound as abstract: \(table.split(separator: "\n").filter { $0.contains("ftvm-notify") })")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "@\(name)"), "an abstract address must not make a file")
        let notifier = try XCTUnwrap(try SystemdNotifier(environment: ["NOTIFY_SOCKET": "@\(name)"]))
        try notifier.ready(status: "up")
        XCTAssertEqual(try systemd.receive(timeoutSeconds: 2), Array("READY=1\nSTATUS=up\n".utf8))
        // A name one byte longer is another socket (nobody listens there): the address length
        // counts exactly the name's bytes.
        XCTAssertThrowsError(try SystemdNotifier(address: "@\(name)x").status("x")) {
            XCTAssertEqual($0 as? Errno, .connectionRefused)
        }
    }

    func testNoSocketNoNotifier() throws {
        XCTAssertNil(try SystemdNotifier(environment: [:]))
        XCTAssertNil(try SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]))
        XCTAssertThrowsError(try SystemdNotifier(address: "@").ready(status: "x"))
    }
}
