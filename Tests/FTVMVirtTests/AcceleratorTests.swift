import FTVMVirt
import XCTest

final class AcceleratorTests: XCTestCase {
    static let intelWithVMX = """
        processor\t: 0
        vendor_id\t: GenuineIntel
        flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx smx est tm2
        vmx flags\t: vnmi preemption_timer invvpid ept_x_only
        """
    static let amdWithSVM = "processor\t: 0\nflags\t\t: fpu vme de svm extapic cr8_legacy\n"
    /// A guest CPU without nested virtualization; "vmx flags" alone must not count.
    static let withoutVirtualization = """
        processor\t: 0
        flags\t\t: fpu vme de pse tsc msr pae hypervisor
        vmx flags\t: vnmi
        processor\t: 1
        flags\t\t: fpu vme de pse tsc msr pae hypervisor
        """

    func testDetection() {
        XCTAssertEqual(Accelerator.detect(cpuinfo: Self.intelWithVMX, kvmDeviceExists: true), .kvm)
        XCTAssertEqual(Accelerator.detect(cpuinfo: Self.amdWithSVM, kvmDeviceExists: true), .kvm)
        XCTAssertEqual(Accelerator.detect(cpuinfo: Self.intelWithVMX, kvmDeviceExists: false), .qemu)
        // The build machines: /dev/kvm present but no vmx/svm, so TCG.
        XCTAssertEqual(Accelerator.detect(cpuinfo: Self.withoutVirtualization, kvmDeviceExists: true), .qemu)
        XCTAssertEqual(Accelerator.detect(cpuinfo: "", kvmDeviceExists: true), .qemu)
        XCTAssertFalse(Accelerator.cpuinfoHasHardwareVirtualization("flags : fpu svmx vmxe"))
    }

    func testOverrideParsing() throws {
        XCTAssertEqual(try AcceleratorChoice(parsing: "kvm"), .forced(.kvm))
        XCTAssertEqual(try AcceleratorChoice(parsing: " QEMU\n"), .forced(.qemu))
        XCTAssertEqual(try AcceleratorChoice(parsing: "tcg"), .forced(.qemu))
        XCTAssertEqual(try AcceleratorChoice(parsing: "auto"), .auto)
        XCTAssertEqual(try AcceleratorChoice(parsing: ""), .auto)
        XCTAssertThrowsError(try AcceleratorChoice(parsing: "kvmm")) { error in
            XCTAssertEqual(error as? VirtError, .invalidAccelerator("kvmm"))
            XCTAssertEqual("\(error)", "invalid accelerator 'kvmm' in FTVM_ACCEL: use kvm, qemu (TCG) or auto")
        }
    }

    func testFromEnvironment() throws {
        XCTAssertEqual(try Accelerator.fromEnvironment(["FTVM_ACCEL": "kvm"]), .kvm)
        XCTAssertEqual(try Accelerator.fromEnvironment(["FTVM_ACCEL": "qemu"]), .qemu)
        XCTAssertThrowsError(try Accelerator.fromEnvironment(["FTVM_ACCEL": "xen"]))
        // Auto on this host gives one of the two; which one depends on the machine.
        XCTAssertTrue(Accelerator.allCases.contains(try Accelerator.fromEnvironment([:])))
    }
}
