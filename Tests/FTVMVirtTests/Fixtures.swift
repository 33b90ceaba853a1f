import FTVMVirt
import FTVMWire

/// Specs shared by the tests. Values are fixed so rendered XML is byte-for-byte stable.
enum Fixtures {
    static let metadata = GuestMetadata(
        role: .primary, pairName: "web", generation: 3, imageDirectory: "/var/lib/ftvm/images/web-1.4.0",
        imageVersion: "1.4.0", link: 47101, sharedMemoryPath: "/dev/shm/ftvm-web-3-chan")

    static func primarySpec(virtType: Accelerator = .qemu) -> DomainSpec {
        DomainSpec(
            name: "ftvm-web-3", uuid: "6f1c2a4e-5b7d-4c8e-9f10-1a2b3c4d5e6f", virtType: virtType,
            memoryMiB: 256, vcpus: 1,
            boot: KernelBoot(
                kernelPath: "/var/lib/ftvm/images/web-1.4.0/vmlinuz",
                initrdPath: "/var/lib/ftvm/images/web-1.4.0/initrd.img",
                commandLine: "console=ttyS0 quiet panic=0 ftvm.role=primary"),
            mac: MACAddress("52:54:00:f7:00:01")!,
            network: GuestLink(id: 47101),
            sharedMemory: SharedMemoryDevice(name: "ftvm-web-3-chan", sizeMiB: 1),
            consoleLogPath: "/var/log/ftvm/ftvm-web-3.console.log",
            metadata: metadata)
    }
}
