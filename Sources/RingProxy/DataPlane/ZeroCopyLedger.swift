/// The receive buffers lent to the kernel by zero-copy sends. A zero-copy send completes twice: its result,
/// then a notification once the kernel no longer reads the buffer. A buffer goes back to the ring only when
/// its tunnel is done with it *and* every notification for it is in, in whichever order those happen.
struct ZeroCopyLedger: ~Copyable {
    /// Notifications still to come, per buffer.
    private let outstanding: FixedArray<UInt16>
    /// The tunnel let go of the buffer while notifications were outstanding.
    private let released: FixedArray<Bool>

    init(buffers: Int) {
        outstanding = FixedArray(repeating: 0, count: buffers)
        released = FixedArray(repeating: false, count: buffers)
    }

    /// A zero-copy send of `buffer` was submitted.
    @inline(__always)
    mutating func lend(_ buffer: UInt16) { outstanding[Int(buffer)] += 1 }

    /// The tunnel is done with `buffer`. True when it can go back to the ring now.
    @inline(__always)
    mutating func release(_ buffer: UInt16) -> Bool {
        guard outstanding[Int(buffer)] > 0 else { return true }
        released[Int(buffer)] = true
        return false
    }

    /// A notification for `buffer` came in (or its send ended without one). True when it can go back now.
    @inline(__always)
    mutating func returned(_ buffer: UInt16) -> Bool {
        outstanding[Int(buffer)] -= 1
        guard outstanding[Int(buffer)] == 0, released[Int(buffer)] else { return false }
        released[Int(buffer)] = false
        return true
    }
}
