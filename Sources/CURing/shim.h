// The parts of liburing (and of the kernel ABI newer than Debian's liburing 2.3 headers) that Swift cannot
// import on its own: function-like macros, and constants that only newer headers define.
#ifndef RINGPROXY_CURING_SHIM_H
#define RINGPROXY_CURING_SHIM_H

// liburing.h defines _GNU_SOURCE and _XOPEN_SOURCE before it includes the system headers. Swift's Glibc
// module was built without them, and a struct that the two see differently (fd_set's fds_bits) fails the
// build. Reading <features.h> first fixes the feature set to Glibc's; liburing needs nothing beyond it.
#include <features.h>
#include <liburing.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/eventfd.h>
#include <spawn.h>
#include <netinet/in.h>

// Kernel 6.10+: recv/send a bundle of provided buffers in one operation.
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
// Kernel 6.4+: a timeout that posts a completion each period until cancelled.
#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6)
#endif
// Kernel 6.0+: the feature bit saying provided-buffer recv can be bundled (6.10+).
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#ifndef SO_INCOMING_CPU
#define SO_INCOMING_CPU 49
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

// IOSQE_* are defined in terms of enum constants, which Swift's macro import does not follow.
static const unsigned char curing_sqe_io_link = IOSQE_IO_LINK;
static const unsigned char curing_sqe_buffer_select = IOSQE_BUFFER_SELECT;
static const unsigned char curing_sqe_cqe_skip_success = IOSQE_CQE_SKIP_SUCCESS;

static const unsigned int curing_recvsend_bundle = IORING_RECVSEND_BUNDLE;
static const unsigned int curing_feat_recvsend_bundle = IORING_FEAT_RECVSEND_BUNDLE;
static const int curing_so_incoming_cpu = SO_INCOMING_CPU;
static const int curing_ip_bind_address_no_port = IP_BIND_ADDRESS_NO_PORT;
static const int curing_rlimit_memlock = 8; // RLIMIT_MEMLOCK, an alias Swift does not import

// glibc declares these only under _GNU_SOURCE, which would make this module's view of the system headers
// disagree with SwiftGlibc's; bind to the same symbols under our own names instead.
extern int curing_sched_setaffinity(pid_t pid, size_t size, const unsigned long *mask) __asm__("sched_setaffinity");
extern int curing_sched_getaffinity(pid_t pid, size_t size, unsigned long *mask) __asm__("sched_getaffinity");
extern int curing_pthread_setname(unsigned long thread, const char *name) __asm__("pthread_setname_np");
extern unsigned long curing_pthread_self(void) __asm__("pthread_self");
extern int curing_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) __asm__("posix_spawn_file_actions_addclosefrom_np");
extern int curing_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) __asm__("accept4");
extern ssize_t curing_getrandom(void *buffer, size_t length, unsigned int flags) __asm__("getrandom");

// ioctl is variadic, which Swift does not import: bound to the same symbol under a fixed prototype, as
// above. The bytes sent on a socket that its peer has not acknowledged yet (SIOCOUTQ, 0x5411 on x86-64 and
// arm64), or -1.
extern int curing_ioctl_int(int fd, unsigned long request, int *value) __asm__("ioctl");
static inline int curing_unacknowledged_bytes(int fd) {
    int value = 0;
    return curing_ioctl_int(fd, 0x5411, &value) == 0 ? value : -1;
}

// Atomics on plain machine words in memory Swift did not initialise (the backend table is mapped zeroed and
// touched lazily, so Synchronization.Atomic, which needs initialised storage, does not fit).
static inline long curing_load_relaxed(const long *word) { return __atomic_load_n(word, __ATOMIC_RELAXED); }
static inline long curing_load_acquire(const long *word) { return __atomic_load_n(word, __ATOMIC_ACQUIRE); }
static inline void curing_store_relaxed(long *word, long value) { __atomic_store_n(word, value, __ATOMIC_RELAXED); }
static inline void curing_store_release(long *word, long value) { __atomic_store_n(word, value, __ATOMIC_RELEASE); }
static inline long curing_fetch_add(long *word, long delta) { return __atomic_fetch_add(word, delta, __ATOMIC_ACQ_REL); }
static inline int curing_compare_exchange(long *word, long expected, long desired) {
    return __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

#define CURING_CPU_WORDS (4096 / (8 * sizeof(unsigned long)))

/// Pins the calling thread to one CPU. Returns 0 or an errno value.
static inline int curing_pin_current_thread(int cpu) {
    unsigned long mask[CURING_CPU_WORDS] = {0};
    if (cpu < 0 || cpu >= 4096) return 22;
    mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    return curing_sched_setaffinity(0, sizeof(mask), mask) == 0 ? 0 : -1;
}

/// Names the calling thread (at most 15 characters), as `top -H` and `perf` show it.
static inline void curing_name_current_thread(const char *name) {
    curing_pthread_setname(curing_pthread_self(), name);
}

/// The CPUs this process may run on. Writes up to `capacity` ids; returns the count, or -1.
static inline int curing_allowed_cpus(int *cpus, int capacity) {
    unsigned long mask[CURING_CPU_WORDS] = {0};
    if (curing_sched_getaffinity(0, sizeof(mask), mask) != 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < 4096 && count < capacity; cpu++) {
        if (mask[cpu / (8 * sizeof(unsigned long))] & (1UL << (cpu % (8 * sizeof(unsigned long))))) cpus[count++] = cpu;
    }
    return count;
}

#endif
