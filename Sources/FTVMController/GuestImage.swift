import Foundation

/// A built guest image directory (see images/build.sh): kernel, initramfs, and `image.env`.
public struct GuestImage: Sendable, Equatable, Codable {
    public var directory: String
    public var version: String

    public var kernelPath: String { "\(directory)/vmlinuz" }
    public var initrdPath: String { "\(directory)/initrd.img" }
    public var envPath: String { "\(directory)/image.env" }

    /// Checks that the image is complete and readable by libvirt's QEMU user before anything is
    /// defined, so a bad path fails fast and leaves nothing half-made.
    public init(directory: String) throws(ConfigError) {
        let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
        self.directory = absolute
        self.version = "unknown"
        for file in ["vmlinuz", "initrd.img", "image.env"] {
            let path = "\(absolute)/\(file)"
            guard FileManager.default.fileExists(atPath: path) else {
                throw .missingImage(directory: absolute, file: file)
            }
            let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
            guard mode & 0o004 != 0 else { throw .unreadableImage(path: path) }
        }
        let env = (try? String(contentsOfFile: envPath, encoding: .utf8)) ?? ""
        self.version = Self.value(of: "FTVM_IMAGE_VERSION", in: env) ?? "unknown"
    }

    static func value(of key: String, in env: String) -> String? {
        for line in env.split(separator: "\n") where line.hasPrefix("\(key)=") {
            var value = line.dropFirst(key.count + 1)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            return String(value)
        }
        return nil
    }
}
