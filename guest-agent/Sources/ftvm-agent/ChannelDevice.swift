import FTVMChannel
import FTVMSystem
import Glibc

/// Finds the ivshmem-plain PCI device that carries the host channel and maps its BAR 2.
///
/// No driver is needed: sysfs exposes the BAR as `resource2`, and writing 1 to `enable` turns
/// on memory decoding in case the firmware left it off.
enum ChannelDevice {
    /// Red Hat's vendor id and the ivshmem device id (QEMU docs/specs/ivshmem-spec.rst).
    static let vendor = "0x1af4"
    static let device = "0x1110"
    static let devicesDirectory = "/sys/bus/pci/devices"

    static func find() -> String? {
        guard let directory = opendir(devicesDirectory) else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.hasPrefix(".") else { continue }
            let path = "\(devicesDirectory)/\(name)"
            if (try? SmallFile.read("\(path)/vendor"))?.trimmed == vendor,
                (try? SmallFile.read("\(path)/device"))?.trimmed == device
            {
                return path
            }
        }
        return nil
    }

    /// Waits until the device exists and holds a valid channel, reporting why while it cannot.
    static func attach() -> Channel {
        var lastComplaint = ""
        while true {
            let complaint: String
            if let device = find() {
                try? SmallFile.write("\(device)/enable", "1")
                do {
                    let region = try MappedFile(path: "\(device)/resource2")
                    return try Channel(attaching: region)
                } catch let error as ChannelError {
                    complaint = error.description
                } catch {
                    complaint = "cannot map \(device)/resource2: \(error)"
                }
            } else {
                complaint = "no ivshmem device (vendor \(vendor), device \(device)): is <shmem> in the domain XML?"
            }
            if complaint != lastComplaint {
                Console.say("waiting for the host channel: \(complaint)")
                lastComplaint = complaint
            }
            usleep(200_000)
        }
    }
}

extension String {
    var trimmed: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

/// The agent writes to the serial console (stdout under busybox init); the host keeps that log.
enum Console {
    static func say(_ message: String) {
        print("ftvm-agent: \(message) [t=\(Uptime.millis)ms]")
        fflush(nil)
    }
}

enum Uptime {
    /// Milliseconds since the guest booted (CLOCK_BOOTTIME keeps counting across a pause's end).
    static var millis: Int {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return Int(now.tv_sec) * 1000 + Int(now.tv_nsec) / 1_000_000
    }
}
