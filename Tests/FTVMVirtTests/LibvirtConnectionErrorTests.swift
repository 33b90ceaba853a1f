import FTVMVirt
import Foundation
import XCTest

/// Error mapping for connection failures; needs the libvirt client library but no libvirtd.
final class LibvirtConnectionErrorTests: XCTestCase {
    func testClosedSocketSaysLibvirtdIsNotRunningAndHowToStartIt() {
        let uri = "qemu+unix:///system?socket=/nonexistent/sock"
        XCTAssertThrowsError(try LibvirtConnection(uri: uri)) { error in
            guard case VirtError.libvirtdUnreachable(let reportedURI, let detail) = error else {
                return XCTFail("expected libvirtdUnreachable, got \(error)")
            }
            XCTAssertEqual(reportedURI, uri)
            XCTAssertTrue(detail.contains("/nonexistent/sock"), detail)
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("libvirtd is not running (\(uri) unreachable)"), message)
            XCTAssertTrue(message.contains("`bash scripts/setup.sh`"), message)
            XCTAssertTrue(message.contains("`libvirtd --daemon`"), message)
        }
    }

    /// What a stopped libvirtd leaves behind: a socket file nobody accepts on (ECONNREFUSED).
    func testStaleSocketSaysLibvirtdIsNotRunning() throws {
        let path = NSTemporaryDirectory() + "ftvm-virt-stale-\(getpid()).sock"
        unlink(path)
        defer { unlink(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            path.utf8CString.withUnsafeBytes { raw.copyMemory(from: $0) }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0, "bind \(path): errno \(errno)")
        close(fd)  // bound but never listening: connect(2) gets ECONNREFUSED

        XCTAssertThrowsError(try LibvirtConnection(uri: "qemu+unix:///system?socket=\(path)")) { error in
            guard case VirtError.libvirtdUnreachable = error else {
                return XCTFail("expected libvirtdUnreachable, got \(error)")
            }
        }
    }

    func testUnknownDriverIsAConnectionFailureNotUnreachable() {
        XCTAssertThrowsError(try LibvirtConnection(uri: "nosuchdriver:///system")) { error in
            guard case VirtError.connectionFailed = error else {
                return XCTFail("expected connectionFailed, got \(error)")
            }
        }
    }
}
