public import FTVMWire

/// Everything that distinguishes one ftvm guest's libvirt definition from another's.
///
/// The rest of the definition is fixed policy and lives in ``DomainXML``: no disks, graphics,
/// USB or balloon; a panic device; `on_crash=preserve` so a panicked guest stays for inspection;
/// `on_poweroff`/`on_reboot=destroy` so a guest never comes back by itself behind the daemon's back.
public struct DomainSpec: Sendable, Equatable {
    /// libvirt domain name; `[A-Za-z0-9._-]`, at most 64 characters (it also names files under
    /// `/run/libvirt/qemu/` and log files, so nothing that needs quoting).
    public var name: String
    /// Fixed UUID, or `nil` to let libvirt choose one. Redefining an existing domain by name
    /// requires its current UUID (libvirt: "domain 'x' already exists with uuid …").
    public var uuid: String?
    /// `.kvm` or `.qemu` (TCG); also selects the CPU model.
    public var virtType: Accelerator
    public var memoryMiB: Int
    public var vcpus: Int
    /// Direct kernel boot; `nil` boots firmware only (SeaBIOS finds no boot device and idles),
    /// which tests use to get a real, startable domain without an image.
    public var boot: KernelBoot?
    public var mac: MACAddress
    /// The guest's one NIC: a virtio NIC on its link tap to the daemon's relay.
    public var network: GuestLink
    /// The ivshmem-plain channel device.
    public var sharedMemory: SharedMemoryDevice
    /// Where the serial console (ttyS0) is logged on the host. virtlogd writes it as root (file
    /// mode 0600, appended across boots, rotated by virtlogd), so the directory need not be
    /// writable by `libvirt-qemu` — but it must exist: start fails with "Unable to open file".
    public var consoleLogPath: String
    public var metadata: GuestMetadata

    public init(
        name: String, uuid: String? = nil, virtType: Accelerator, memoryMiB: Int, vcpus: Int,
        boot: KernelBoot?, mac: MACAddress, network: GuestLink, sharedMemory: SharedMemoryDevice,
        consoleLogPath: String, metadata: GuestMetadata
    ) {
        self.name = name
        self.uuid = uuid
        self.virtType = virtType
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.boot = boot
        self.mac = mac
        self.network = network
        self.sharedMemory = sharedMemory
        self.consoleLogPath = consoleLogPath
        self.metadata = metadata
    }
}

/// QEMU direct kernel boot (`-kernel/-initrd/-append`).
///
/// QEMU runs as `libvirt-qemu` and opens the kernel and initrd itself, so both files (and every
/// directory above them) must be readable by that user — world-readable is simplest.
public struct KernelBoot: Sendable, Equatable {
    public var kernelPath: String
    public var initrdPath: String?
    public var commandLine: String

    public init(kernelPath: String, initrdPath: String?, commandLine: String) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.commandLine = commandLine
    }
}

/// A guest's link to the relay: a tap named `ftvg<id>` that the daemon creates beforehand
/// (libvirt `<interface type='ethernet'>` with `<target dev=… managed='no'/>`). libvirt opens
/// it and hands QEMU the fd with a virtio-net header (virtio model), so the guest's TSO
/// super-frames and partial checksums cross it whole; the daemon reads and writes the host side
/// through an AF_PACKET socket. The tap has no address and the host's stack forwards nothing
/// from it: frames never leave the host on their own.
public struct GuestLink: Sendable, Equatable, Hashable {
    public var id: UInt16

    public init(id: UInt16) { self.id = id }

    /// The tap's name, read back from a definition; nil when it is not one of ftvm's.
    public init?(tap: String) {
        guard tap.hasPrefix(Self.prefix), let id = UInt16(tap.dropFirst(Self.prefix.count)), id != 0 else {
            return nil
        }
        self.id = id
    }

    static let prefix = "ftvg"
    public var tap: String { Self.prefix + String(id) }

    /// Appends the `<interface>` for this link, with the guest's MAC.
    func appendInterface(to devices: XMLNode, mac: MACAddress) throws(VirtError) {
        let interface = try devices.append("interface").set("type", "ethernet")
        try interface.append("mac").set("address", mac.description)
        try interface.append("target").set("dev", tap).set("managed", "no")
        try interface.append("model").set("type", "virtio")
    }
}

/// An ivshmem-plain device backed by `/dev/shm/<name>`.
///
/// QEMU (as `libvirt-qemu`) creates the file when missing, mode 0644, and keeps an existing one and
/// its contents. libvirt neither chowns it nor deletes it on destroy/undefine. A file created
/// beforehand by root with mode 0600 makes the start fail ("can't open backing store … Permission
/// denied"): pre-create it owned by `libvirt-qemu`, or let QEMU create it.
public struct SharedMemoryDevice: Sendable, Equatable {
    /// File name under `/dev/shm`; same character rules as a domain name.
    public var name: String
    /// Size in MiB; ivshmem requires a power of two.
    public var sizeMiB: Int

    public init(name: String, sizeMiB: Int) {
        self.name = name
        self.sizeMiB = sizeMiB
    }

    /// The host path QEMU maps.
    public var path: String { "/dev/shm/" + name }
}
