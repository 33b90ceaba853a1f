internal import CLibXML2

/// Owner of one libxml2 document tree; frees it in `deinit`.
///
/// All XML in this module goes through libxml2 so names, text and attribute values are escaped by
/// the library rather than by string concatenation. Not thread-safe: each render or parse builds
/// its own document on the calling thread and drops it before returning.
final class LibXMLDocument {
    let doc: xmlDocPtr

    /// libxml2 wants `xmlInitParser` once per process before it is used from several threads
    /// (libvirt and other modules may use it concurrently). A static `let` runs this exactly once.
    private static let initialized: Void = { xmlInitParser() }()

    /// A new document whose root element is `rootName` (no namespace).
    init(rootName: String) throws(VirtError) {
        _ = Self.initialized
        guard let doc = xmlNewDoc("1.0") else { throw VirtError.malformedXML("libxml2 could not allocate a document") }
        self.doc = doc
        try XMLText.validate(rootName, what: "element name")
        guard let root = xmlNewDocNode(doc, nil, rootName, nil) else {
            throw VirtError.malformedXML("libxml2 could not create element <\(rootName)>")
        }
        xmlDocSetRootElement(doc, root)
    }

    /// Parses `text`. Network access and entity expansion stay off (no XXE); errors are collected
    /// rather than printed to stderr. `droppingBlanks` drops whitespace-only text, so that a
    /// document edited and serialized again is indented afresh; it would also turn a
    /// whitespace-only field into an empty one, so fields that may hold one keep it off.
    init(parsing text: String, droppingBlanks: Bool = false) throws(VirtError) {
        _ = Self.initialized
        let options = Int32(
            XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue
                | (droppingBlanks ? XML_PARSE_NOBLANKS.rawValue : 0))
        let bytes = Array(text.utf8)
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                xmlReadMemory($0.baseAddress, Int32(clamping: $0.count), nil, "UTF-8", options)
            }
        }
        guard let parsed else {
            let message = xmlGetLastError().flatMap { $0.pointee.message.map { String(cString: $0) } }
            let trimmed = message.map { String($0.reversed().drop(while: \.isNewline).reversed()) }
            throw VirtError.malformedXML("not well-formed XML: \(trimmed ?? "unknown libxml2 error")")
        }
        doc = parsed
    }

    deinit { xmlFreeDoc(doc) }

    var root: XMLNode? { xmlDocGetRootElement(doc).map(XMLNode.init) }

    /// Pretty-printed (two-space indent), without the `<?xml …?>` declaration, as libvirt prints.
    func serialized() throws(VirtError) -> String {
        guard let buffer = xmlBufferCreate() else {
            throw VirtError.malformedXML("libxml2 could not allocate a buffer")
        }
        defer { xmlBufferFree(buffer) }
        let options = Int32(XML_SAVE_FORMAT.rawValue | XML_SAVE_NO_DECL.rawValue)
        guard let context = xmlSaveToBuffer(buffer, "UTF-8", options) else {
            throw VirtError.malformedXML("libxml2 could not create a save context")
        }
        let written = xmlSaveDoc(context, doc)
        xmlSaveClose(context)
        guard written >= 0, let content = xmlBufferContent(buffer) else {
            throw VirtError.malformedXML("libxml2 could not serialize the document")
        }
        return String(cString: content)
    }

    /// Nodes selected by an XPath expression (relative to `node` when given).
    ///
    /// The CLibXML2 module does not import `xpathInternals.h`, so prefixes cannot be registered;
    /// namespaced elements are matched with `*[local-name()='x' and namespace-uri()='…']`.
    func nodes(_ expression: String, relativeTo node: XMLNode? = nil) -> [XMLNode] {
        guard let context = xmlXPathNewContext(doc) else { return [] }
        defer { xmlXPathFreeContext(context) }
        if let node { context.pointee.node = node.pointer }
        guard let result = xmlXPathEvalExpression(expression, context) else { return [] }
        defer { xmlXPathFreeObject(result) }
        guard let set = result.pointee.nodesetval, set.pointee.nodeNr > 0, let table = set.pointee.nodeTab else {
            return []
        }
        return (0..<Int(set.pointee.nodeNr)).compactMap { table[$0].map(XMLNode.init) }
    }

    func first(_ expression: String, relativeTo node: XMLNode? = nil) -> XMLNode? {
        nodes(expression, relativeTo: node).first
    }
}

/// A borrowed element of a ``LibXMLDocument``; valid only while that document is alive.
struct XMLNode {
    let pointer: xmlNodePtr

    /// The element's local name (without a namespace prefix).
    var name: String { pointer.pointee.name.map { String(cString: $0) } ?? "" }

    /// The namespace URI, if the element has one.
    var namespaceURI: String? { pointer.pointee.ns?.pointee.href.map { String(cString: $0) } }

    /// All text content (concatenated descendants), as libxml2's `xmlNodeGetContent`.
    var text: String {
        Self.content(of: pointer)
    }

    /// Text content of an element or attribute node, copied out through an `xmlBuffer` so the
    /// result never needs `xmlFree` (a global function-pointer variable Swift 6 cannot touch).
    private static func content(of node: xmlNodePtr) -> String {
        guard let buffer = xmlBufferCreate() else { return "" }
        defer { xmlBufferFree(buffer) }
        guard xmlNodeBufGetContent(buffer, node) == 0, let bytes = xmlBufferContent(buffer) else { return "" }
        return String(cString: bytes)
    }

    /// Child elements in document order.
    var children: [XMLNode] {
        var result: [XMLNode] = []
        var cursor = pointer.pointee.children
        while let node = cursor {
            if node.pointee.type == XML_ELEMENT_NODE { result.append(XMLNode(pointer: node)) }
            cursor = node.pointee.next
        }
        return result
    }

    /// The first child element with this local name, in any namespace.
    func child(_ localName: String) -> XMLNode? { children.first { $0.name == localName } }

    func attribute(_ name: String) -> String? {
        guard let attribute = xmlHasProp(pointer, name) else { return nil }
        return attribute.withMemoryRebound(to: xmlNode.self, capacity: 1) { Self.content(of: $0) }
    }

    /// Appends `<name>` (with `text` escaped by libxml2) and returns it. `xmlNewTextChild`, not
    /// `xmlNewChild`: the latter would interpret `&` in the text as an entity reference.
    @discardableResult
    func append(_ name: String, namespace: xmlNsPtr? = nil, text: String? = nil) throws(VirtError) -> XMLNode {
        try XMLText.validate(name, what: "element name")
        if let text { try XMLText.validate(text, what: "text of <\(name)>") }
        guard let node = xmlNewTextChild(pointer, namespace, name, text) else {
            throw VirtError.malformedXML("libxml2 could not create element <\(name)>")
        }
        return XMLNode(pointer: node)
    }

    /// Sets an attribute; libxml2 escapes the value on output.
    @discardableResult
    func set(_ name: String, _ value: String) throws(VirtError) -> XMLNode {
        try XMLText.validate(value, what: "attribute \(name)")
        guard xmlSetProp(pointer, name, value) != nil else {
            throw VirtError.malformedXML("libxml2 could not set attribute \(name)")
        }
        return self
    }

    /// The first child element named `name`, appended when there is none.
    func childOrNew(_ name: String) throws(VirtError) -> XMLNode {
        if let existing = child(name) { return existing }
        return try append(name)
    }

    /// Takes this element out of its document and frees it; the node must not be used afterwards.
    func remove() {
        xmlUnlinkNode(pointer)
        xmlFreeNode(pointer)
    }

    /// Removes the attribute if present.
    func unset(_ name: String) {
        xmlUnsetProp(pointer, name)
    }

    /// Declares `prefix` → `uri` on this element and puts the element itself in that namespace.
    func declareNamespace(uri: String, prefix: String) throws(VirtError) -> xmlNsPtr {
        guard let ns = xmlNewNs(pointer, uri, prefix) else {
            throw VirtError.malformedXML("libxml2 could not declare namespace \(prefix)=\(uri)")
        }
        xmlSetNs(pointer, ns)
        return ns
    }
}

/// Checks that text can appear in an XML 1.0 document at all: libxml2 happily stores control
/// characters that make the serialized document unreadable by libvirt.
enum XMLText {
    static func validate(_ text: String, what: String) throws(VirtError) {
        for scalar in text.unicodeScalars {
            let v = scalar.value
            let allowed =
                v == 0x9 || v == 0xA || v == 0xD || (v >= 0x20 && v <= 0xD7FF)
                || (v >= 0xE000 && v <= 0xFFFD) || v >= 0x10000
            if !allowed {
                throw VirtError.invalidSpec(
                    "\(what) contains character U+\(String(v, radix: 16, uppercase: true)), which XML cannot carry")
            }
        }
    }
}
