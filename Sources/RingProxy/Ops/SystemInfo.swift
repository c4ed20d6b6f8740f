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
}
