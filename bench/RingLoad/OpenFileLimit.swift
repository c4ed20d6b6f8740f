import Glibc

/// Raises this process's soft limit on open files to its hard limit: every connection is a descriptor.
func raiseOpenFileLimit() {
    var limit = rlimit()
    let resource = __rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue))
    guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    if setrlimit(resource, &limit) != 0 {
        printError("ringload: cannot raise the open-file limit to \(limit.rlim_max): \(String(cString: strerror(errno)))")
    }
}
