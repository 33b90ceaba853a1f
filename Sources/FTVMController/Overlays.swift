import FTVMVirt
import Foundation

/// The throwaway qcow2 overlays of a protected domain's guests: one per writable disk and guest,
/// over the operator's file as a read-only base, so that a paused backup never holds a writable
/// view of a disk the primary writes, and the operator's disk is never written at all. What a
/// guest writes lives and dies with the guest (docs/protect.md).
enum Overlays {
    /// Creates the overlays of guest `generation`; returns them by disk target.
    static func create(for template: OperatorDomain, generation: Int, config: PairConfig) throws -> [String: String] {
        try FileManager.default.createDirectory(atPath: config.pairDirectory, withIntermediateDirectories: true)
        var overlays: [String: String] = [:]
        do {
            for disk in template.disks {
                let path = config.overlayPath(generation: generation, target: disk.target)
                try? FileManager.default.removeItem(atPath: path)
                try HostCommand.run([
                    "qemu-img", "create", "-q", "-f", "qcow2", "-F", disk.format, "-b", disk.path, path,
                ])
                overlays[disk.target] = path
            }
        } catch {
            remove(generation: generation, config: config)
            throw error
        }
        return overlays
    }

    static func remove(generation: Int, config: PairConfig) {
        let prefix = config.overlayPrefix(generation: generation)
        for file in files(config: config) where file.hasPrefix(prefix) {
            try? FileManager.default.removeItem(atPath: "\(config.pairDirectory)/\(file)")
        }
    }

    /// Removes the pair's directory: every overlay and the saved operator definition.
    static func removeAll(config: PairConfig) {
        try? FileManager.default.removeItem(atPath: config.pairDirectory)
    }

    private static func files(config: PairConfig) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: config.pairDirectory)) ?? []
    }
}
