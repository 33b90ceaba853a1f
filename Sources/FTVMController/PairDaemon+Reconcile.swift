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

    /// Looks at the backup's domain and acts on what it finds. Runs on the health loop's thread,
    /// as takeovers do, so a takeover never resumes a backup this is pausing or replacing.
    func reconcile(backup: Guest) {
        guard let trouble = backupTrouble(backup.domain) else { return }
        // An upgrade or a teardown may have claimed the pair since the health loop read its phase.
        let claimed = state.withLock { state -> Bool in
            guard state.phase == .protected, state.backup?.domain == backup.domain else { return false }
            if case .lost(let why) = trouble {
                state.phase = .unprotected
                state.degradedReason = "backup \(backup.domain) \(why); booting a new one"
                state.handled.backupsReplaced += 1
            } else {
                state.handled.backupsRepaused += 1
            }
            return true
        }
        guard claimed else { return }
        switch trouble {
        case .running:
            logger.warning(
                "backup resumed outside ftvm: pausing it again (the relay never forwarded its frames)",
                metadata: ["domain": "\(backup.domain)"])
            do {
                try virt.domain(named: backup.domain).suspend()
            } catch {
                logger.error("cannot pause the backup again", metadata: ["error": "\(error)"])
            }
        case .lost(let why):
            logger.error(
                "backup lost: the pair is unprotected until a new one is ready",
                metadata: ["domain": "\(backup.domain)", "why": "\(why)"])
            remove(backup.domain)
            startReprotection(retiring: nil, detectedAt: nil)
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

    /// Re-protects in the background (see `reprotect`).
    func startReprotection(retiring: String?, detectedAt: UInt64?) {
        let thread = Thread { [self] in reprotect(retiring: retiring, detectedAt: detectedAt) }
        thread.name = "ftvm-reprotect"
        thread.start()
    }
}
