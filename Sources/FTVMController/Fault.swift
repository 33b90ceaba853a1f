/// The faults `ftvm inject` can put into the primary, each a real failure of its kind.
public enum Fault: String, Sendable, Codable, CaseIterable {
    /// `echo c > /proc/sysrq-trigger` in the guest: a real panic, reported through pvpanic.
    case kernelPanic = "kernel-panic"
    /// A SCHED_FIFO 99 spinner with RT throttling off: the kernel schedules nothing else.
    case kernelHang = "kernel-hang"
    /// SIGKILL to the service process.
    case serviceCrash = "service-crash"
    /// SIGSTOP to the service process: it holds its sockets and answers nothing.
    case serviceHang = "service-hang"
    /// SIGKILL to the guest's QEMU process on the host.
    case qemuKill = "qemu-kill"
    /// The agent exits: heartbeats stop while the kernel and services go on.
    case agentKill = "agent-kill"
    /// The guest's NICs go down (each one with an IPv4 address, as `ip link set DEV down`):
    /// kernel, agent and services carry on and answer their local probes, but nothing reaches
    /// the network (a stuck data path).
    case networkStall = "network-stall"
}
