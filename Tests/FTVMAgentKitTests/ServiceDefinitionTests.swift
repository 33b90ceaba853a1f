import XCTest

@testable import FTVMAgentKit

final class ServiceDefinitionTests: XCTestCase {
    /// The initramfs image's services file parses exactly as before: commands with arguments.
    func testCommandLines() throws {
        let text = """
            # comment
            demo 80 /bin/ftvm-demo-service --port 80 --command-port 7070
            static 8080 /bin/busybox httpd -f -p 8080 -h /srv/www   # trailing comment

            """
        XCTAssertEqual(
            try ServiceDefinition.parse(text),
            [
                ServiceDefinition(
                    name: "demo", port: 80,
                    launch: .command(["/bin/ftvm-demo-service", "--port", "80", "--command-port", "7070"])),
                ServiceDefinition(
                    name: "static", port: 8080,
                    launch: .command(["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"])),
            ])
    }

    func testUnitLine() throws {
        XCTAssertEqual(
            try ServiceDefinition.parse("nginx 80 unit:nginx.service\n\tweb\t8080\tunit:my-web@1.service"),
            [
                ServiceDefinition(name: "nginx", port: 80, launch: .unit("nginx.service")),
                ServiceDefinition(name: "web", port: 8080, launch: .unit("my-web@1.service")),
            ])
    }

    /// Each bad line is refused with its line number, never skipped.
    func testBadLinesAreErrors() {
        let bad = [
            "nginx 80",  // no command
            "nginx 0 /usr/sbin/nginx",  // port 0
            "nginx 70000 /usr/sbin/nginx",  // port out of range
            "nginx http /usr/sbin/nginx",  // port not a number
            "nginx 80 nginx",  // relative command
            "nginx 80 unit:",  // empty unit
            "nginx 80 unit:nginx",  // not a .service unit
            "nginx 80 unit:nginx.socket",
            "nginx 80 unit:../x.service",  // leaves the slice's directory
            "nginx 80 unit:.service",
            "nginx 80 unit:nginx.service extra",  // a unit takes no arguments
        ]
        for line in bad {
            XCTAssertThrowsError(try ServiceDefinition.parse("# first\n\(line)"), line) { error in
                XCTAssertEqual((error as? ServiceFileError)?.line, 2, line)
            }
        }
    }
}
