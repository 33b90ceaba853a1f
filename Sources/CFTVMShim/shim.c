#define _GNU_SOURCE
#include "CFTVMShim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <sched.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

static int open_tap_here(const char *ifname, int persist, int offload) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    int header = (int)sizeof(struct virtio_net_hdr);
    unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 || (persist && ioctl(fd, TUNSETPERSIST, 1) < 0)
        || (offload && (ioctl(fd, TUNSETVNETHDRSZ, &header) < 0 || ioctl(fd, TUNSETOFFLOAD, offloads) < 0))) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/// Runs `work(context)` on this thread inside the network namespace bound at `netns_path`, then
/// returns the thread to its own namespace: what it returns, or -errno.
static int in_netns(const char *netns_path, int (*work)(const void *), const void *context) {
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) return -errno;
    int target = open(netns_path, O_RDONLY | O_CLOEXEC);
    if (target < 0) {
        int err = errno;
        close(home);
        return -err;
    }
    int result;
    if (setns(target, CLONE_NEWNET) < 0) {
        result = -errno;
    } else {
        result = work(context);
        // Returning home cannot fail for a namespace we were just in; if it ever did, this
        // thread would keep working inside the client namespace, so say so loudly.
        if (setns(home, CLONE_NEWNET) < 0) {
            if (result >= 0) close(result);
            result = -EXDEV;
        }
    }
    close(target);
    close(home);
    return result;
}

struct tap_request {
    const char *ifname;
    int persist;
    int offload;
};

static int open_tap_requested(const void *context) {
    const struct tap_request *request = context;
    return open_tap_here(request->ifname, request->persist, request->offload);
}

int ftvm_tap_open(const char *netns_path, const char *ifname, int persist, int offload) {
    struct tap_request request = {ifname, persist, offload};
    if (netns_path == NULL) return open_tap_requested(&request);
    return in_netns(netns_path, open_tap_requested, &request);
}

static int open_socket_requested(const void *context) {
    const int *request = context;
    int fd = socket(request[0], request[1] | SOCK_CLOEXEC, request[2]);
    return fd < 0 ? -errno : fd;
}

int ftvm_socket_in(const char *netns_path, int domain, int type, int protocol) {
    int request[3] = {domain, type, protocol};
    if (netns_path == NULL) return open_socket_requested(request);
    return in_netns(netns_path, open_socket_requested, request);
}

int ftvm_tap_unpersist(int fd) {
    return ioctl(fd, TUNSETPERSIST, 0) < 0 ? -errno : 0;
}

int ftvm_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -errno;
    return 0;
}

int ftvm_set_realtime(int priority) {
    struct sched_param param = { .sched_priority = priority };
    return sched_setscheduler(0, SCHED_FIFO, &param) < 0 ? -errno : 0;
}

int ftvm_accept_cloexec(int fd) {
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    return client < 0 ? -errno : client;
}

int ftvm_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int ftvm_pidfd_open(int pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

int ftvm_eventfd(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

enum { FTVM_BATCH_MAX = 64 };

/* An AF_PACKET socket of protocol 0 (it receives nothing until bound: an ETH_P_ALL socket
   would see every interface's frames) and the index of `ifname`; the fd or -errno. */
static int packet_socket(const char *ifname, int extra_flags, int *index) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | extra_flags, 0);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    *index = ifr.ifr_ifindex;
    return fd;
}

int ftvm_packet_open(const char *ifname, int buffer_bytes) {
    int index;
    int fd = packet_socket(ifname, SOCK_NONBLOCK, &index);
    if (fd < 0) return fd;
    int one = 1;
    struct sockaddr_ll address;
    memset(&address, 0, sizeof address);
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = index;
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0
        || setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0
        || setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof buffer_bytes) < 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer_bytes, sizeof buffer_bytes) < 0
        || bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static void point_messages(struct mmsghdr *messages, struct iovec *vectors, void *buffers, int stride,
                           const int *lengths, int count) {
    memset(messages, 0, sizeof(struct mmsghdr) * (size_t)count);
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = (char *)buffers + (size_t)i * (size_t)stride;
        vectors[i].iov_len = lengths ? (size_t)lengths[i] : (size_t)stride;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
}

int ftvm_recv_frames(int fd, void *buffers, int stride, int count, int *lengths) {
    struct mmsghdr messages[FTVM_BATCH_MAX];
    struct iovec vectors[FTVM_BATCH_MAX];
    if (count > FTVM_BATCH_MAX) count = FTVM_BATCH_MAX;
    point_messages(messages, vectors, buffers, stride, NULL, count);
    int received = recvmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT, NULL);
    if (received < 0) return -errno;
    for (int i = 0; i < received; i++) lengths[i] = (int)messages[i].msg_len;
    return received;
}

int ftvm_send_frames(int fd, const void *buffers, int stride, const int *lengths, int count) {
    struct mmsghdr messages[FTVM_BATCH_MAX];
    struct iovec vectors[FTVM_BATCH_MAX];
    if (count > FTVM_BATCH_MAX) count = FTVM_BATCH_MAX;
    point_messages(messages, vectors, (void *)buffers, stride, lengths, count);
    int sent = sendmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT);
    return sent < 0 ? -errno : sent;
}

int ftvm_link_set_down(const char *ifname) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    int result = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        result = -errno;
    } else {
        ifr.ifr_flags &= ~IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) result = -errno;
    }
    close(fd);
    return result;
}

int ftvm_send_frame(const char *ifname, const void *frame, int length) {
    if (length < ETH_HLEN) return -EINVAL;
    /* Never bound: a send-only socket that receives nothing. */
    int index;
    int fd = packet_socket(ifname, 0, &index);
    if (fd < 0) return fd;
    struct sockaddr_ll to;
    memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_ifindex = index;
    to.sll_halen = ETH_ALEN;
    memcpy(to.sll_addr, frame, ETH_ALEN);
    ssize_t sent = sendto(fd, frame, (size_t)length, 0, (struct sockaddr *)&to, sizeof to);
    int result = sent == length ? 0 : (sent < 0 ? -errno : -EIO);
    close(fd);
    return result;
}

int ftvm_terminal_size(int fd, unsigned short *rows, unsigned short *columns) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) < 0) return -errno;
    *rows = size.ws_row;
    *columns = size.ws_col;
    return 0;
}

#if defined(__x86_64__)
int ftvm_crc32c_hardware_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

/* Only this function is compiled for SSE4.2, so the rest of the binary runs on any x86-64. One
 * dependency chain: the instruction's 3-cycle latency bounds it near 8 bytes / 3 cycles. */
__attribute__((target("sse4.2"))) uint32_t ftvm_crc32c_hardware(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint64_t state = (uint32_t)~crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof word); /* an unaligned load, without breaking aliasing rules */
        state = _mm_crc32_u64(state, word);
        p += 8;
        count -= 8;
    }
    uint32_t narrow = (uint32_t)state;
    while (count > 0) {
        narrow = _mm_crc32_u8(narrow, *p);
        p += 1;
        count -= 1;
    }
    return ~narrow;
}
#else
int ftvm_crc32c_hardware_available(void) { return 0; }
#endif
