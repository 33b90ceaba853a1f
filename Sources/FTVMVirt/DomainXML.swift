internal import CLibXML2
internal import FTVMWire

/// Turns a ``DomainSpec`` into libvirt domain XML and reads ftvm's parts back out of it.
///
/// Built and read with libxml2 only. The output is deterministic (fixed element order, libxml2's
/// two-space formatting), so it can be compared byte for byte against a golden file.
///
/// Checked against libvirt 9.0 / QEMU 7.2 with `virsh define` + `virsh start`:
/// - `<interface type='ethernet'>` with `<target dev='ftvgN' managed='no'/>` and a virtio model
///   becomes `-netdev tap,fd=…,vhost=off` on the existing tap (with its virtio-net header; no vhost
///   under TCG).
/// - `<serial type='pty'>` with `<log file=… append='on'/>` writes the console to the file through
///   virtlogd (root-owned, 0600, rotated by virtlogd) and keeps `virsh console` usable.
/// - `<panic model='isa'/>` plus ACPI makes a guest panic emit CRASHED/PANICKED and, with
///   `on_crash=preserve`, leaves the domain in state "crashed (panicked)". The Debian 6.1 cloud
///   kernel only reports it once the `pvpanic` and `pvpanic-mmio` modules are loaded (initrd).
/// - libvirt adds a PIIX3 USB controller unless told `<controller type='usb' model='none'/>`.
public enum DomainXML {
    /// QEMU machine type: i440fx boots faster than q35 and needs nothing q35 adds.
    static let machine = "pc"
    /// CPU model under TCG: plain x86-64 (Debian 12's baseline) avoids emulating features the
    /// guest kernel would only spend time probing.
    static let tcgCPUModel = "qemu64"

    /// Renders the complete domain definition.
    ///
    /// - Throws: ``VirtError/invalidSpec(_:)`` when a field cannot be expressed or is inconsistent.
    public static func render(_ spec: DomainSpec) throws(VirtError) -> String {
        try validate(spec)
        let document = try LibXMLDocument(rootName: "domain")
        guard let domain = document.root else { throw VirtError.malformedXML("document without root") }
        try domain.set("type", spec.virtType.domainType)
        try domain.append("name", text: spec.name)
        if let uuid = spec.uuid { try domain.append("uuid", text: uuid) }

        let metadata = try domain.append("metadata")
        let guest = try metadata.append(GuestMetadata.elementName)
        let ns = try guest.declareNamespace(uri: GuestMetadata.namespaceURI, prefix: GuestMetadata.namespacePrefix)
        try spec.metadata.appendFields(to: guest, namespace: ns)

        try domain.append("memory", text: String(spec.memoryMiB)).set("unit", "MiB")
        try domain.append("vcpu", text: String(spec.vcpus))

        let os = try domain.append("os")
        try os.append("type", text: "hvm").set("arch", "x86_64").set("machine", machine)
        if let boot = spec.boot {
            try os.append("kernel", text: boot.kernelPath)
            if let initrd = boot.initrdPath { try os.append("initrd", text: initrd) }
            try os.append("cmdline", text: boot.commandLine)
        } else {
            // Without a boot device SeaBIOS would reboot after 60 s, which on_reboot=destroy
            // turns into a stop; -1 makes it wait forever instead.
            try os.append("bios").set("rebootTimeout", "-1")
        }
        // ACPI describes the ISA pvpanic device to the guest (the kernel's pvpanic-mmio driver).
        try domain.append("features").append("acpi")

        let cpu = try domain.append("cpu")
        switch spec.virtType {
        case .qemu:
            try cpu.set("mode", "custom").set("match", "exact")
            try cpu.append("model", text: tcgCPUModel).set("fallback", "forbid")
        case .kvm:
            // Guests never migrate, so exposing the host CPU as-is costs nothing.
            try cpu.set("mode", "host-passthrough")
        }

        try domain.append("on_poweroff", text: "destroy")
        try domain.append("on_reboot", text: "destroy")
        try domain.append("on_crash", text: "preserve")

        let devices = try domain.append("devices")
        try devices.append("controller").set("type", "usb").set("model", "none")

        try spec.network.appendInterface(to: devices, mac: spec.mac)

        let serial = try devices.append("serial").set("type", "pty")
        try serial.append("log").set("file", spec.consoleLogPath).set("append", "on")
        try serial.append("target").set("port", "0")
        let console = try devices.append("console").set("type", "pty")
        try console.append("target").set("type", "serial").set("port", "0")

        let shmem = try devices.append("shmem").set("name", spec.sharedMemory.name)
        try shmem.append("model").set("type", "ivshmem-plain")
        try shmem.append("size", text: String(spec.sharedMemory.sizeMiB)).set("unit", "M")

        try devices.append("memballoon").set("model", "none")
        // The Swift runtime blocks in getrandom() until the kernel's pool is ready; without a
        // hardware source that costs about a second of every TCG boot (docs/image.md).
        let rng = try devices.append("rng").set("model", "virtio")
        try rng.append("backend", text: "/dev/urandom").set("model", "random")
        try devices.append("panic").set("model", "isa")
        return try document.serialized()
    }

    /// Reads a domain definition back into a ``DomainSpec``: either ftvm's own rendering or what
    /// libvirt returns from `virDomainGetXMLDesc` (which adds defaults, addresses and converts
    /// memory to KiB — all tolerated).
    ///
    /// - Throws: ``VirtError/malformedXML(_:)`` when the XML is not a domain or lacks a part ftvm
    ///   always defines (ftvm metadata, link interface, shmem, logged serial console).
    public static func parse(_ xml: String) throws(VirtError) -> DomainSpec {
        let document = try LibXMLDocument(parsing: xml)
        guard let domain = document.root, domain.name == "domain" else {
            throw VirtError.malformedXML("root element is not <domain>")
        }
        func required(_ path: String) throws(VirtError) -> XMLNode {
            guard let node = document.first(path, relativeTo: domain) else {
                throw VirtError.malformedXML("domain has no \(path)")
            }
            return node
        }
        func requiredAttribute(_ node: XMLNode, _ name: String, of path: String) throws(VirtError) -> String {
            guard let value = node.attribute(name) else {
                throw VirtError.malformedXML("\(path) has no '\(name)' attribute")
            }
            return value
        }

        let typeText = try requiredAttribute(domain, "type", of: "<domain>")
        guard let virtType = Accelerator(rawValue: typeText) else {
            throw VirtError.malformedXML("domain type '\(typeText)' is neither kvm nor qemu")
        }
        guard let metadata = try guestMetadata(in: document, domain: domain) else {
            throw VirtError.malformedXML(
                "domain has no ftvm metadata (<ftvm:guest xmlns:ftvm='\(GuestMetadata.namespaceURI)'>)")
        }

        let memory = try required("memory")
        let memoryMiB = try mebibytes(memory.text, unit: memory.attribute("unit") ?? "KiB", of: "<memory>")
        let vcpuText = try required("vcpu").text
        guard let vcpus = Int(vcpuText), vcpus > 0 else {
            throw VirtError.malformedXML("<vcpu> is '\(vcpuText)', not a positive integer")
        }

        var boot: KernelBoot?
        if let kernel = document.first("os/kernel", relativeTo: domain) {
            boot = KernelBoot(
                kernelPath: kernel.text,
                initrdPath: document.first("os/initrd", relativeTo: domain)?.text,
                commandLine: document.first("os/cmdline", relativeTo: domain)?.text ?? "")
        }

        let interfacePath = "devices/interface[@type='ethernet']"
        let macNode = try required(interfacePath + "/mac")
        let macText = try requiredAttribute(macNode, "address", of: "<mac>")
        guard let mac = MACAddress(macText) else {
            throw VirtError.malformedXML("<mac address='\(macText)'> is not a MAC address")
        }
        let tap = try requiredAttribute(
            try required(interfacePath + "/target"), "dev", of: "<interface type='ethernet'><target>")
        guard let link = GuestLink(tap: tap) else {
            throw VirtError.malformedXML("<interface type='ethernet'><target dev='\(tap)'> is not an ftvm link (ftvgN)")
        }

        let shmem = try required("devices/shmem")
        let shmemName = try requiredAttribute(shmem, "name", of: "<shmem>")
        guard let sizeNode = shmem.child("size") else { throw VirtError.malformedXML("<shmem> has no <size>") }
        let sizeMiB = try mebibytes(sizeNode.text, unit: sizeNode.attribute("unit") ?? "b", of: "<shmem><size>")

        // ftvm writes a pty serial with <log>; also accept a file serial so hand-edited
        // definitions that log the console directly still parse.
        let logPath: String
        if let log = document.first("devices/serial/log", relativeTo: domain), let file = log.attribute("file") {
            logPath = file
        } else if let source = document.first("devices/serial[@type='file']/source", relativeTo: domain),
            let path = source.attribute("path")
        {
            logPath = path
        } else {
            throw VirtError.malformedXML("domain has no serial console logged to a file")
        }

        return DomainSpec(
            name: try required("name").text,
            uuid: document.first("uuid", relativeTo: domain)?.text,
            virtType: virtType, memoryMiB: memoryMiB, vcpus: vcpus, boot: boot, mac: mac,
            network: link,
            sharedMemory: SharedMemoryDevice(name: shmemName, sizeMiB: sizeMiB),
            consoleLogPath: logPath, metadata: metadata)
    }

    /// The ftvm metadata of any domain definition, or `nil` when the domain is not ftvm's.
    ///
    /// - Throws: ``VirtError/malformedXML(_:)`` when the XML is unreadable or the record is damaged.
    public static func guestMetadata(inDomainXML xml: String) throws(VirtError) -> GuestMetadata? {
        let document = try LibXMLDocument(parsing: xml)
        guard let domain = document.root, domain.name == "domain" else {
            throw VirtError.malformedXML("root element is not <domain>")
        }
        return try guestMetadata(in: document, domain: domain)
    }

    private static func guestMetadata(in document: LibXMLDocument, domain: XMLNode) throws(VirtError) -> GuestMetadata?
    {
        let path =
            "metadata/*[local-name()='\(GuestMetadata.elementName)' and namespace-uri()='\(GuestMetadata.namespaceURI)']"
        return try document.first(path, relativeTo: domain).map(GuestMetadata.init(element:))
    }

    /// Converts a libvirt scaled integer (`<memory unit='KiB'>262144</memory>`) to whole MiB.
    static func mebibytes(_ text: String, unit: String, of what: String) throws(VirtError) -> Int {
        let multipliers: [String: Int] = [
            "b": 1, "bytes": 1,
            "KB": 1000, "k": 1 << 10, "KiB": 1 << 10,
            "MB": 1_000_000, "M": 1 << 20, "MiB": 1 << 20,
            "GB": 1_000_000_000, "G": 1 << 30, "GiB": 1 << 30,
            "TB": 1_000_000_000_000, "T": 1 << 40, "TiB": 1 << 40,
        ]
        guard let multiplier = multipliers[unit] else {
            throw VirtError.malformedXML("\(what) has unknown unit '\(unit)'")
        }
        guard let value = Int(text.filter { !$0.isWhitespace }), value >= 0 else {
            throw VirtError.malformedXML("\(what) value '\(text)' is not a non-negative integer")
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow, bytes % (1 << 20) == 0 else {
            throw VirtError.malformedXML("\(what) of \(value) \(unit) is not a whole number of MiB")
        }
        return bytes >> 20
    }

    // MARK: - Validation

    /// Rejects specs libvirt would refuse late (or accept and misbehave on), with a reason.
    static func validate(_ spec: DomainSpec) throws(VirtError) {
        try validateName(spec.name, what: "domain name")
        try validateName(spec.sharedMemory.name, what: "shmem name")
        if let uuid = spec.uuid, !isUUID(uuid) {
            throw VirtError.invalidSpec("uuid '\(uuid)' is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
        }
        guard spec.memoryMiB >= 16 else { throw VirtError.invalidSpec("memory \(spec.memoryMiB) MiB is below 16 MiB") }
        guard (1...255).contains(spec.vcpus) else {
            throw VirtError.invalidSpec("vcpus \(spec.vcpus) is outside 1-255")
        }
        let size = spec.sharedMemory.sizeMiB
        guard size > 0, size & (size - 1) == 0 else {
            throw VirtError.invalidSpec("shmem size \(size) MiB is not a power of two (ivshmem requires one)")
        }
        guard spec.network.id != 0 else { throw VirtError.invalidSpec("link id must be 1-65535") }
        guard !spec.mac.isMulticast else { throw VirtError.invalidSpec("MAC \(spec.mac) is a multicast address") }
        try validatePath(spec.consoleLogPath, what: "console log path")
        if let boot = spec.boot {
            try validatePath(boot.kernelPath, what: "kernel path")
            if let initrd = boot.initrdPath { try validatePath(initrd, what: "initrd path") }
        }
        // The metadata repeats the wiring so the daemon can rebuild its relay from metadata alone;
        // a disagreement would send frames to the wrong place after a restart.
        let m = spec.metadata
        guard m.link == spec.network.id else {
            throw VirtError.invalidSpec("metadata link \(m.link) differs from the interface's (\(spec.network.tap))")
        }
        guard m.sharedMemoryPath == spec.sharedMemory.path else {
            throw VirtError.invalidSpec(
                "metadata shm path '\(m.sharedMemoryPath)' differs from the shmem device's '\(spec.sharedMemory.path)'")
        }
        try m.validate()
    }

    private static func validateName(_ name: String, what: String) throws(VirtError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed, name != ".", name != ".." else {
            throw VirtError.invalidSpec("\(what) '\(name)' must be 1-64 characters of A-Z a-z 0-9 . _ -")
        }
    }

    private static func validatePath(_ path: String, what: String) throws(VirtError) {
        guard path.hasPrefix("/") else { throw VirtError.invalidSpec("\(what) '\(path)' must be absolute") }
    }

    private static func isUUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return false }
        return groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }
}
