import CURing
import Glibc
import RingSystem

/// Turns an io_uring set-up failure into one line that names the cause and the fix: an old kernel,
/// `kernel.io_uring_disabled`, a seccomp profile, or the locked-memory limit.
public enum RingAvailability {
    /// Sets up (and drops) a small ring with a one-entry buffer ring, so start-up fails early and clearly.
    /// Returns nil when io_uring works, else the explanation.
    public static func check() -> String? {
        let ring: IORing
        do {
            ring = try IORing(entries: 8)
        } catch {
            return explain(error)
        }
        do {
            _ = try BufferRing(registeringWith: ring, group: 0, count: 1, size: 64)
        } catch {
            return explain(error)
        }
        return nil
    }

    /// The operator-facing explanation of a failed ring call.
    public static func explain(_ error: RingError, lockedBytesNeeded: Int? = nil) -> String {
        let kernel = kernelRelease()
        switch error.errno {
        case ENOSYS:
            return "io_uring is not available: kernel \(kernel) was built without it (CONFIG_IO_URING) or is too old; RingProxy needs Linux 5.19 or newer (6.1+ recommended)"
        case EPERM, EACCES:
            switch readSysctl("kernel/io_uring_disabled") {
            case "2":
                return "io_uring is disabled on this host (sysctl kernel.io_uring_disabled=2); enable it with: sysctl -w kernel.io_uring_disabled=0"
            case "1":
                let group = readSysctl("kernel/io_uring_group") ?? "?"
                return "io_uring is limited to group \(group) (sysctl kernel.io_uring_disabled=1); run as a member of that group, or set kernel.io_uring_disabled=0"
            default:
                if seccompFiltered() {
                    return "\(error.operation) was blocked by a seccomp filter (container runtimes' default profiles block io_uring); run with the profile in docker/seccomp-ringproxy.json (docker run --security-opt seccomp=docker/seccomp-ringproxy.json), see README 'Deploy'"
                }
                return "\(error.operation) was denied (\(errnoName(error.errno))): a security policy (seccomp, SELinux, AppArmor) blocks io_uring for this process"
            }
        case ENOMEM:
            let limit = lockedMemoryLimit().map { "\($0 / 1024) KiB" } ?? "unknown"
            let needed = lockedBytesNeeded.map { ", and each worker needs about \(($0 + 1023) / 1024) KiB" } ?? ""
            return "\(error.operation) could not lock memory: the locked-memory limit (RLIMIT_MEMLOCK) is \(limit)\(needed); raise it with 'ulimit -l unlimited' or LimitMEMLOCK=infinity in the systemd unit"
        case EINVAL where error.operation == "io_uring_register_buf_ring":
            return "kernel \(kernel) has no provided buffer rings (io_uring_register_buf_ring): RingProxy needs Linux 5.19 or newer"
        default:
            return "\(error) (kernel \(kernel))"
        }
    }

    /// Whether a cancelled send reports the bytes it had sent (Linux 6.1+). Before, a partly sent `MSG_WAITALL`
    /// send that is cancelled completes with `-ECANCELED` alone, and what went is unknown.
    public static var cancelledSendsReportProgress: Bool {
        let numbers = kernelRelease().split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return false }
        return (numbers[0], numbers[1]) >= (6, 1)
    }

    package static func kernelRelease() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    package static func readSysctl(_ path: String) -> String? {
        guard let file = fopen("/proc/sys/\(path)", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        return String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True when /proc/self/status says a seccomp filter is attached (mode 2).
    package static func seccompFiltered() -> Bool {
        guard let file = fopen("/proc/self/status", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("Seccomp:") { return text.contains("2") }
        }
        return false
    }

    package static func lockedMemoryLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(UInt32(curing_rlimit_memlock)), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return Int(limit.rlim_cur)
    }
}
