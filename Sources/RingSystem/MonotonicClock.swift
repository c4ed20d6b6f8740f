import Glibc

/// Milliseconds on a coarse monotonic clock (a vDSO read, no system call): health deadlines and timers.
@inlinable
public func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
