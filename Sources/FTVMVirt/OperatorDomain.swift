internal import CLibXML2
public import FTVMWire

/// A libvirt domain an operator defined (`virsh define`), read as the template of a protected
/// pair's guests.
///
/// ftvm never changes the operator's definition. Each guest it makes is a copy with its own
/// name, a throwaway qcow2 overlay over every writable disk (the operator's file becomes a
/// read-only base), a NIC on the relay's link instead of the operator's NIC (same MAC), and ftvm's
/// channel, panic device and metadata. Memory, vCPUs, boot and the other devices are kept.
public struct OperatorDomain: Sendable, Equatable {
    /// Where the operator's NIC was plugged: the relay's uplink goes there instead.
    public enum Uplink: Sendable, Equatable, CustomStringConvertible {
        /// `<interface type='network'>`: a libvirt network (its bridge carries the clients).
        case network(String)
        /// `<interface type='bridge'>`: a host bridge.
        case bridge(String)

        public var description: String {
            switch self {
            case .network(let name): "libvirt network '\(name)'"
            case .bridge(let name): "host bridge '\(name)'"
            }
        }
    }

    /// A writable file-backed disk, which each guest reads through an overlay of its own.
    public struct Disk: Sendable, Equatable {
        /// The guest device name (`vda`): names the overlay.
        public var target: String
        public var path: String
        /// `raw` or `qcow2`: the overlay's backing format.
        public var format: String

        public init(target: String, path: String, format: String) {
            self.target = target
            self.path = path
            self.format = format
        }
    }

    public let name: String
    /// The definition as read (libvirt's inactive XML).
    public let xml: String
    public let mac: MACAddress
    public let uplink: Uplink
    public let disks: [Disk]

    /// Reads and checks the operator's definition.
    ///
    /// - Throws: ``VirtError/cannotProtect(domain:reasons:)`` listing everything that stands in
    ///   the way (several NICs, a disk that is not a file, …), or ``VirtError/malformedXML(_:)``.
    public init(xml: String) throws(VirtError) {
        let document = try LibXMLDocument(parsing: xml)
        guard let root = document.root, root.name == "domain" else {
            throw VirtError.malformedXML("root element is not <domain>")
        }
        guard let name = root.child("name")?.text, !name.isEmpty else {
            throw VirtError.malformedXML("domain has no <name>")
        }
        var reasons: [String] = []
        let interfaces = document.nodes("/domain/devices/interface")
        var found: (MACAddress, Uplink)?
        if interfaces.count != 1 {
            reasons.append(
                "it has \(interfaces.count) network interfaces; ftvm relays exactly one (the service's), "
                    + "so define the domain with a single <interface>")
        } else if let interface = interfaces.first {
            let type = interface.attribute("type") ?? "?"
            let source = interface.child("source")
            let mac = interface.child("mac")?.attribute("address").flatMap(MACAddress.init)
            switch (type, source?.attribute("network"), source?.attribute("bridge"), mac) {
            case ("network", let network?, _, let mac?): found = (mac, .network(network))
            case ("bridge", _, let bridge?, let mac?): found = (mac, .bridge(bridge))
            case ("network", _, _, _), ("bridge", _, _, _):
                reasons.append("its <interface type='\(type)'> lacks a <source> or a <mac address>")
            default:
                reasons.append(
                    "its interface is type '\(type)'; ftvm can move only a NIC on a libvirt network "
                        + "(type='network') or a host bridge (type='bridge')")
            }
        }
        var disks: [Disk] = []
        for disk in document.nodes("/domain/devices/disk") {
            let device = disk.attribute("device") ?? "disk"
            let target = disk.child("target")?.attribute("dev") ?? "?"
            let readOnly = disk.child("readonly") != nil
            if readOnly || device == "cdrom" || device == "floppy" {
                if !readOnly && disk.child("source") != nil {
                    reasons.append("its \(device) \(target) is writable; mark it <readonly/>")
                }
                continue
            }
            let type = disk.attribute("type") ?? "?"
            guard type == "file", let path = disk.child("source")?.attribute("file") else {
                reasons.append(
                    "disk \(target) is type '\(type)'; ftvm needs a file it can put an overlay on "
                        + "(type='file' with <source file=…>)")
                continue
            }
            if disk.child("shareable") != nil {
                reasons.append("disk \(target) is <shareable/>: two guests writing one disk cannot be replayed")
            }
            let format = disk.child("driver")?.attribute("type") ?? "raw"
            guard format == "raw" || format == "qcow2" else {
                reasons.append("disk \(target) is format '\(format)'; ftvm overlays raw or qcow2 files")
                continue
            }
            disks.append(Disk(target: target, path: path, format: format))
        }
        if !document.nodes("/domain/devices/hostdev").isEmpty {
            reasons.append("it passes a host device through (<hostdev>), which two guests cannot share")
        }
        if document.first("/domain/devices/shmem[@name='\(name)']") != nil {
            reasons.append("it already has a <shmem> device")
        }
        guard reasons.isEmpty, let (mac, uplink) = found else {
            throw VirtError.cannotProtect(domain: name, reasons: reasons)
        }
        self.name = name
        self.xml = xml
        self.mac = mac
        self.uplink = uplink
        self.disks = disks
    }

    /// The same definition with disk `target` read from `path` instead: an upgrade to a new
    /// base disk (same format as the old one).
    public func replacingDisk(_ target: String, with path: String) throws(VirtError) -> OperatorDomain {
        let document = try LibXMLDocument(parsing: xml)
        guard
            let disk = document.nodes("/domain/devices/disk").first(where: {
                $0.child("target")?.attribute("dev") == target
            }), let source = disk.child("source")
        else {
            throw VirtError.cannotProtect(domain: name, reasons: ["it has no file-backed disk \(target)"])
        }
        try source.set("file", path)
        disk.child("backingStore")?.remove()
        return try OperatorDomain(xml: try document.serialized())
    }

    /// One guest's definition: the operator's with ftvm's changes (see the type's summary).
    /// `overlays` maps each disk's target to its overlay file.
    public func guestXML(
        name guestName: String, virtType: Accelerator, network: GuestLink, sharedMemory: SharedMemoryDevice,
        consoleLogPath: String, metadata: GuestMetadata, overlays: [String: String]
    ) throws(VirtError) -> String {
        let document = try LibXMLDocument(parsing: xml, droppingBlanks: true)
        guard let domain = document.root else { throw VirtError.malformedXML("document without root") }
        try domain.set("type", virtType.domainType)
        for element in ["name", "uuid", "on_crash"] { domain.child(element)?.remove() }
        try domain.append("name", text: guestName)
        // A panicked guest must stay "crashed" for the daemon to see it.
        try domain.append("on_crash", text: "preserve")

        let guest = try domain.childOrNew("metadata").append(GuestMetadata.elementName)
        let ns = try guest.declareNamespace(uri: GuestMetadata.namespaceURI, prefix: GuestMetadata.namespacePrefix)
        try metadata.appendFields(to: guest, namespace: ns)

        guard let devices = domain.child("devices") else { throw VirtError.malformedXML("domain has no <devices>") }
        for disk in document.nodes("/domain/devices/disk") {
            guard let target = disk.child("target")?.attribute("dev"), let overlay = overlays[target] else { continue }
            try disk.child("source")?.set("file", overlay)
            disk.child("backingStore")?.remove()
            try disk.childOrNew("driver").set("name", "qemu").set("type", "qcow2")
        }
        document.first("/domain/devices/interface")?.remove()
        try network.appendInterface(to: devices, mac: mac)

        // The console is logged for the daemon's error messages, one file per guest: on the
        // operator's first serial port when it is a pty (its own log file, if it names one, would
        // be shared by two guests), else on one ftvm adds.
        if let serial = document.first("/domain/devices/serial") {
            if serial.attribute("type") == "pty" {
                try serial.childOrNew("log").set("file", consoleLogPath).set("append", "on")
            }
        } else {
            let serial = try devices.append("serial").set("type", "pty")
            try serial.append("log").set("file", consoleLogPath).set("append", "on")
            try serial.append("target").set("port", "0")
        }
        let shmem = try devices.append("shmem").set("name", sharedMemory.name)
        try shmem.append("model").set("type", "ivshmem-plain")
        try shmem.append("size", text: String(sharedMemory.sizeMiB)).set("unit", "M")
        if document.first("/domain/devices/panic") == nil {
            try devices.append("panic").set("model", "isa")
            if document.first("/domain/features/acpi") == nil {
                try domain.childOrNew("features").append("acpi")
            }
        }
        return try document.serialized()
    }
}
