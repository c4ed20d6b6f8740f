// c-ares (Debian: libc-ares-dev), for the DNS discovery of backends (Sources/RingDNS). Only what Swift cannot
// import on its own is defined here: ares_getsock's result is a bit mask read with function-like macros.
#ifndef RINGPROXY_CARES_SHIM_H
#define RINGPROXY_CARES_SHIM_H

// As in CURing's shim: fix the feature set to Glibc's before any system header.
#include <features.h>
#include <ares.h>
#include <arpa/nameser.h>

static inline int cares_socket_readable(int bits, int index) { return ARES_GETSOCK_READABLE(bits, index) ? 1 : 0; }
static inline int cares_socket_writable(int bits, int index) { return ARES_GETSOCK_WRITABLE(bits, index) ? 1 : 0; }

#endif
