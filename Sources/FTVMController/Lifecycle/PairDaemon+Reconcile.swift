import FTVMSystem
import FTVMVirt
import Foundation

/// libvirt is the source of truth: an operator's `virsh` acts on the pair's guests directly, and
/// the daemon follows what libvirt shows rather than what it last did.
extension PairDaemon {
    /// What may have happened to the paused backup behind the daemon's back.
    enum BackupTrouble: Equatable {
        /// Its vCPUs run (`virsh resume`): pause it again. The relay forwards only the primary's
        /// frames, so it was never on the wire meanwhile.
        case running
        /// It cannot take over any more (destroyed, shut off, crashed, undefined, gone): the pair
        /// is unprotected until a fresh backup is ready.
        case lost(String)
    }

    /// Looks at the backup's domain and tells the lifecycle what it finds. Runs on the health
    /// loop's thread, as takeovers do, so a takeover never resumes a backup this is pausing or
    /// replacing; an upgrade or a teardown that claimed the pair meanwhile makes it a no-op.
    func reconcile(backup domain: String) {
        switch backupTrouble(domain) {
        case nil:
            return
        case .running:
            feed(.backupRunning(domain))
        case .lost(let why):
            logger.error(
                "backup lost: the pair is unprotected until a new one is ready",
                metadata: ["domain": "\(domain)", "why": "\(why)"])
            state.withLock { $0.handled.backupsReplaced += 1 }
            feed(.backupLost(domain: domain, why: why))
        }
    }

    /// Why the backup's domain is not a paused, persistent guest, if it is not.
    func backupTrouble(_ domain: String) -> BackupTrouble? {
        let found: Domain?
        do {
            found = try virt.domainIfDefined(named: domain)
        } catch {
            return nil  // libvirtd unreachable: that says nothing about the guest
        }
        guard let found else { return .lost("was undefined and is gone") }
        guard let current = try? found.state() else { return nil }
        switch current {
        case .running: return .running
        case .shutoff: return .lost("was shut off or destroyed")
        case .crashed: return .lost("crashed")
        case .paused, .pmSuspended, .other:
            return found.isPersistent ? nil : .lost("was undefined (it would vanish once stopped)")
        }
    }
}
