// LD_PRELOAD: RINGLEVER_SETUP=coop|plain rewrites the proxy's first io_uring setup attempt
// (SINGLE_ISSUER|DEFER_TASKRUN) to SINGLE_ISSUER|COOP_TASKRUN|TASKRUN_FLAG, or to no flags.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <liburing.h>
int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p) {
    static int (*real)(unsigned, struct io_uring *, struct io_uring_params *);
    if (!real) real = dlsym(RTLD_NEXT, "io_uring_queue_init_params");
    const char *mode = getenv("RINGLEVER_SETUP");
    if (mode && !(p->flags & IORING_SETUP_SQPOLL)) {
        if (!strcmp(mode, "coop")) p->flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
        else if (!strcmp(mode, "plain")) p->flags = 0;
    }
    int r = real(entries, ring, p);
    if (getenv("RINGLEVER_VERBOSE")) fprintf(stderr, "ringlever: setup flags 0x%x -> %d\n", p->flags, r);
    return r;
}
