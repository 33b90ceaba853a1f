import FTVMVirt
import Foundation
import XCTest

/// The Domain and event wrappers against libvirt's in-process mock driver (`test:///default`),
/// so they are exercised even where no libvirtd runs (FTVM_SKIP_LIBVIRT=1).
final class LibvirtTestDriverTests: XCTestCase {
    func testLifecycleAndMetadataOnTheMockDriver() throws {
        let connection = try LibvirtConnection(uri: "test:///default", keepAlive: nil)
        XCTAssertTrue(connection.isAlive)
        let recorder = EventRecorder()
        let subscription = try connection.subscribeLifecycleEvents { domain, event in
            if domain == "ftvm-web-3" { recorder.record(event) }
        }
        defer { subscription.cancel() }

        let spec = Fixtures.primarySpec()
        let domain = try connection.define(spec)
        try recorder.wait(for: .defined(.added))
        XCTAssertEqual(domain.uuid, spec.uuid)
        XCTAssertEqual(try domain.spec(), spec)
        XCTAssertEqual(try domain.guestMetadata(), spec.metadata)

        try domain.start()
        try recorder.wait(for: .started(.booted))
        try domain.suspend()
        try recorder.wait(for: .suspended(.paused))
        XCTAssertEqual(try domain.state(), .pausedByUser)

        var metadata = spec.metadata
        metadata.role = .retired
        try domain.setGuestMetadata(metadata)
        XCTAssertEqual(try domain.guestMetadata(), metadata)

        try domain.resume()
        try recorder.wait(for: .resumed(.unpaused))
        try domain.destroy()
        try recorder.wait(for: .stopped(.destroyed))
        XCTAssertFalse(try domain.isActive())
        XCTAssertEqual(try domain.guestMetadata(), metadata)

        var unnamed = spec
        unnamed.uuid = nil
        XCTAssertThrowsError(try connection.define(unnamed)) { error in
            guard case VirtError.invalidSpec(let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("already exists"), reason)
        }

        try domain.undefine()
        try recorder.wait(for: .undefined)
        XCTAssertNil(try connection.domainIfDefined(named: spec.name))
    }
}
