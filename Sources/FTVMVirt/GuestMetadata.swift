internal import CLibXML2

/// What ftvm records about a guest inside its libvirt definition, under ftvm's own namespace.
///
/// The daemon keeps no database (DESIGN invariant 6, restartable): after a restart it rebuilds its
/// view of each pair by listing domains and reading this record. It lives in the domain's
/// `<metadata>` as
///
/// ```xml
/// <ftvm:guest xmlns:ftvm="https://ftvm.dev/xmlns/guest/1">
///   <ftvm:role>primary</ftvm:role>
///   <ftvm:pair>web</ftvm:pair>
///   …
/// </ftvm:guest>
/// ```
///
/// and is changed alone through `virDomainSetMetadata` (see ``Domain/setGuestMetadata(_:)``), so a
/// role change never needs the whole domain redefined.
public struct GuestMetadata: Sendable, Equatable, Hashable {
    /// The XML namespace of the record; the trailing `1` is the record's format version.
    public static let namespaceURI = "https://ftvm.dev/xmlns/guest/1"
    /// The prefix libvirt uses for the namespace (the `key` of `virDomainSetMetadata`).
    public static let namespacePrefix = "ftvm"
    /// The record's element name.
    public static let elementName = "guest"

    /// The part a guest plays in its pair.
    public enum Role: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
        /// Serves clients; its frames reach the uplink.
        case primary
        /// Booted once and paused; resumed on failover.
        case backup
        /// A former primary kept (paused or crashed) for inspection, never resumed.
        case retired
        /// Booted from a new image during an upgrade, not yet primary.
        case upgrade

        public var description: String { rawValue }
    }

    public var role: Role
    /// The pair this guest belongs to; the primary and backup of one service share it.
    public var pairName: String
    /// Increases each time the pair gets a new guest, so the newest backup is unambiguous.
    public var generation: Int
    /// Directory holding the image (kernel, initrd) the guest was booted from.
    public var imageDirectory: String
    /// The image's version string, shown by `ftvm status` and compared during upgrades.
    public var imageVersion: String
    /// The guest's link to the relay (`GuestLink.id`; its tap is `ftvg<link>`).
    public var link: UInt16
    /// The guest's channel (ivshmem) backing file, e.g. `/dev/shm/ftvm-web-1-chan`.
    public var sharedMemoryPath: String

    public init(
        role: Role, pairName: String, generation: Int, imageDirectory: String, imageVersion: String,
        link: UInt16, sharedMemoryPath: String
    ) {
        self.role = role
        self.pairName = pairName
        self.generation = generation
        self.imageDirectory = imageDirectory
        self.imageVersion = imageVersion
        self.link = link
        self.sharedMemoryPath = sharedMemoryPath
    }
}

extension GuestMetadata {
    /// Child element names, in output order.
    enum Field {
        static let role = "role"
        static let pair = "pair"
        static let generation = "generation"
        static let imageDirectory = "image-dir"
        static let imageVersion = "image-version"
        static let link = "link"
        static let sharedMemoryPath = "shm-path"
    }

    /// The record as `virDomainSetMetadata` wants it: a lone `<guest>` element with no namespace
    /// (libvirt puts it and every child into the namespace given by `uri` and `key` itself).
    public func xml() throws(VirtError) -> String {
        let document = try LibXMLDocument(rootName: Self.elementName)
        guard let root = document.root else { throw VirtError.malformedXML("document without root") }
        try appendFields(to: root, namespace: nil)
        return try document.serialized()
    }

    /// Parses a `<guest>` element as libvirt returns it (`virDomainGetMetadata` strips the prefix)
    /// or as it appears in domain XML (prefixed); children are matched by local name either way.
    public init(xml: String) throws(VirtError) {
        let document = try LibXMLDocument(parsing: xml)
        guard let root = document.root, root.name == Self.elementName else {
            throw VirtError.malformedXML("ftvm metadata must be a <\(Self.elementName)> element")
        }
        try self.init(element: root)
    }

    /// Appends the fields as children of `element`, in `namespace` when rendering domain XML.
    func appendFields(to element: XMLNode, namespace: xmlNsPtr?) throws(VirtError) {
        try validate()
        try element.append(Field.role, namespace: namespace, text: role.rawValue)
        try element.append(Field.pair, namespace: namespace, text: pairName)
        try element.append(Field.generation, namespace: namespace, text: String(generation))
        try element.append(Field.imageDirectory, namespace: namespace, text: imageDirectory)
        try element.append(Field.imageVersion, namespace: namespace, text: imageVersion)
        try element.append(Field.link, namespace: namespace, text: String(link))
        try element.append(Field.sharedMemoryPath, namespace: namespace, text: sharedMemoryPath)
    }

    init(element: XMLNode) throws(VirtError) {
        func field(_ name: String) throws(VirtError) -> String {
            guard let node = element.child(name) else {
                throw VirtError.malformedXML("ftvm metadata lacks <\(name)>")
            }
            return node.text
        }
        func link(_ name: String) throws(VirtError) -> UInt16 {
            let text = try field(name)
            guard let value = UInt16(text), value != 0 else {
                throw VirtError.malformedXML("ftvm metadata <\(name)> is '\(text)', not a link id 1-65535")
            }
            return value
        }
        // Fields are read in document order so the first problem reported is the first in the file.
        let roleText = try field(Field.role)
        guard let role = Role(rawValue: roleText) else {
            throw VirtError.malformedXML(
                "ftvm metadata <role> is '\(roleText)'; expected one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let pairName = try field(Field.pair)
        let generationText = try field(Field.generation)
        guard let generation = Int(generationText) else {
            throw VirtError.malformedXML("ftvm metadata <generation> is '\(generationText)', not an integer")
        }
        self.init(
            role: role, pairName: pairName, generation: generation,
            imageDirectory: try field(Field.imageDirectory), imageVersion: try field(Field.imageVersion),
            link: try link(Field.link),
            sharedMemoryPath: try field(Field.sharedMemoryPath))
    }

    /// Rejects records that would parse back differently or make no sense to the controller.
    func validate() throws(VirtError) {
        if pairName.isEmpty { throw VirtError.invalidSpec("metadata pair name is empty") }
        if generation < 0 { throw VirtError.invalidSpec("metadata generation \(generation) is negative") }
        if link == 0 { throw VirtError.invalidSpec("metadata link must be 1-65535") }
        if !sharedMemoryPath.hasPrefix("/") {
            throw VirtError.invalidSpec("metadata shm path '\(sharedMemoryPath)' must be absolute")
        }
    }
}
