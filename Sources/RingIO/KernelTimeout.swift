import CURing
import Glibc

/// A duration at a fixed address, for the kernel to read when a timeout that names it is submitted (a tick,
/// a connect's linked timeout). Owned by the ring's owner and changed in place (a reload changes the connect
/// timeout).
public struct KernelTimeout: ~Copyable {
    @usableFromInline let value: FixedArray<__kernel_timespec>

    public init(_ duration: Duration) {
        value = FixedArray(repeating: Self.timespec(duration), count: 1)
    }

    /// Changes the duration; timeouts submitted from now on read the new one.
    public func set(_ duration: Duration) { value[0] = Self.timespec(duration) }

    static func timespec(_ duration: Duration) -> __kernel_timespec {
        let (seconds, attoseconds) = duration.components
        return __kernel_timespec(tv_sec: seconds, tv_nsec: attoseconds / 1_000_000_000)
    }
}
