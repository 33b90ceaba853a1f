#ifndef CFTVMSHIM_H
#define CFTVMSHIM_H

#include <spawn.h>
#include <stddef.h>
#include <stdint.h>

/// Opens a tap device named `ifname` (IFF_TAP | IFF_NO_PI) and returns its fd, or -errno.
/// With `offload`, every read and write starts with a 10-byte virtio-net header (IFF_VNET_HDR)
/// and the kernel may hand over TSO super-frames and partial checksums (TUNSETOFFLOAD).
/// When `netns_path` is not NULL (e.g. "/run/netns/ftvm-demo") the device is created inside
/// that network namespace: the calling thread enters it with setns(2) for the duration of the
/// call and returns to its own namespace before returning. Needs CAP_NET_ADMIN and, for a
/// namespace, CAP_SYS_ADMIN. `persist` sets TUNSETPERSIST so the device outlives the fd.
int ftvm_tap_open(const char *netns_path, const char *ifname, int persist, int offload);

/// socket(domain, type | SOCK_CLOEXEC, protocol) created inside the network namespace bound at
/// `netns_path` (the calling thread enters it for the call, as ftvm_tap_open does), or here when
/// NULL: the socket belongs to that namespace for its life. fd or -errno.
int ftvm_socket_in(const char *netns_path, int domain, int type, int protocol);

/// Clears TUNSETPERSIST on an open tap fd so the device goes away with its last fd. 0 or -errno.
int ftvm_tap_unpersist(int fd);

/// Sets O_NONBLOCK on `fd`. 0 or -errno. (fcntl is variadic and not importable into Swift.)
int ftvm_set_nonblocking(int fd);

/// Raises the calling thread to SCHED_FIFO at `priority`. 0 or -errno.
int ftvm_set_realtime(int priority);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC): the fd or -errno (accept4 needs _GNU_SOURCE).
int ftvm_accept_cloexec(int fd);

/// posix_spawn_file_actions_addclosefrom_np(actions, from): close every fd >= `from` in the
/// child (glibc 2.34+, hidden from Swift behind _GNU_SOURCE). 0 or an errno value.
int ftvm_spawn_close_from(posix_spawn_file_actions_t *actions, int from);

/// pidfd_open(pid, 0): an fd that becomes readable when the process exits (Linux 5.3+), or
/// -errno. Works for processes that are not our children (QEMU is libvirtd's).
int ftvm_pidfd_open(int pid);

/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC): a counter one thread bumps to wake another's poll(2)
/// at once. fd or -errno.
int ftvm_eventfd(void);

/// An AF_PACKET socket bound to interface `ifname` for every EtherType, non-blocking, each frame
/// preceded by a 10-byte virtio-net header (PACKET_VNET_HDR: GSO super-frames and partial
/// checksums pass whole), not seeing its own sends (PACKET_IGNORE_OUTGOING), with
/// `buffer_bytes` of receive and send buffer. Needs CAP_NET_RAW and CAP_NET_ADMIN. fd or -errno.
int ftvm_packet_open(const char *ifname, int buffer_bytes);

/// recvmmsg(2) without the _GNU_SOURCE types: receives up to `count` (<= 64) frames, the i-th
/// into `buffers + i * stride` (at most `stride` bytes), its length in `lengths[i]`.
/// Non-blocking. The number received, or -errno.
int ftvm_recv_frames(int fd, void *buffers, int stride, int count, int *lengths);

/// sendmmsg(2) of `count` (<= 64) frames on a bound socket, the i-th being `lengths[i]` bytes at
/// `buffers + i * stride`. The number sent, or -errno.
int ftvm_send_frames(int fd, const void *buffers, int stride, const int *lengths, int count);

/// Clears IFF_UP on interface `ifname` (SIOCSIFFLAGS), as `ip link set IFNAME down` does.
/// Needs CAP_NET_ADMIN. 0 or -errno.
int ftvm_link_set_down(const char *ifname);

/// Sends one whole Ethernet frame (`length` bytes, destination MAC first) out of `ifname`
/// through an AF_PACKET socket, bypassing the kernel's protocol stack (the agent's gratuitous
/// ARP). Needs CAP_NET_RAW. 0 or -errno.
int ftvm_send_frame(const char *ifname, const void *frame, int length);

/// ioctl(fd, TIOCGWINSZ): the terminal's size in `rows` and `columns`. 0 or -errno (ENOTTY
/// when `fd` is not a terminal). ioctl is variadic and not importable into Swift.
int ftvm_terminal_size(int fd, unsigned short *rows, unsigned short *columns);

/// 1 when the CPU has SSE4.2's `crc32` instruction (CPUID leaf 1, ECX bit 20), else 0; always 0
/// off x86-64. Cheap, but callers ask once and keep the answer.
int ftvm_crc32c_hardware_available(void);

#if defined(__x86_64__)
/// CRC-32C (Castagnoli) of `count` bytes at `bytes`, continuing from `crc` (the finished
/// checksum of what came before; 0 for a fresh start), with SSE4.2's `crc32` instruction, eight
/// bytes at a time. Only call it when ftvm_crc32c_hardware_available() says 1 (an illegal
/// instruction otherwise). Any alignment.
uint32_t ftvm_crc32c_hardware(uint32_t crc, const void *bytes, size_t count);
#endif

#endif
