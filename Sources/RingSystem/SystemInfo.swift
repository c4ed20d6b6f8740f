import CURing
import Glibc

/// Facts about the host the proxy runs on.
public enum SystemInfo {
    /// The CPUs this process may run on (its affinity mask), in ascending order.
    public static func allowedCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: 4096)
        let count = curing_allowed_cpus(&cpus, Int32(cpus.count))
        guard count > 0 else { return Array(0..<max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))) }
        return cpus.prefix(Int(count)).map(Int.init)
    }

    /// Raises the soft open-files limit to the hard one (what a proxy holding two sockets per client needs;
    /// shells often start with 1024 soft under a far higher hard limit). Returns the limit now in force.
    @discardableResult
    public static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        let resource = __rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue))
        guard getrlimit(resource, &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur == rlim_t.max ? Int.max : Int(limit.rlim_cur)
    }
}
