import FTVMVirt
import Foundation

/// What a pair's guests are made from.
public enum GuestSource: Sendable, Equatable {
    /// ftvm's own image (images/build.sh): a kernel and an initramfs, booted on the pair's client
    /// namespace.
    case image(GuestImage)
    /// An operator's libvirt domain (`ftvm protect`): copies of its definition, its disks as
    /// read-only bases under overlays, its NIC's network as the uplink.
    case domain(OperatorDomain)

    /// What `ftvm status` and the guests' metadata call it.
    public var directory: String {
        switch self {
        case .image(let image): image.directory
        case .domain(let domain): "libvirt domain \(domain.name)"
        }
    }

    public var version: String {
        switch self {
        case .image(let image): image.version
        case .domain(let domain):
            "domain \(domain.name)"
                + (domain.disks.first.map { ", disk \($0.path)" } ?? "")
        }
    }
}
