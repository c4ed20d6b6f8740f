import CURing
import Glibc
import RingSystem

/// One io_uring instance, owned and driven by exactly one thread.
///
/// Creation tries the fastest setup the kernel accepts (`SINGLE_ISSUER | DEFER_TASKRUN`, which runs completion
/// work only when this thread enters the kernel) and falls back step by step for older kernels.
public struct IORing: ~Copyable {
    @usableFromInline let raw: UnsafeMutablePointer<io_uring>
    @usableFromInline let completionBatch: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    @usableFromInline let completionBatchCapacity: UInt32
    /// The `IORING_SETUP_*` flags the kernel accepted.
    public let setupFlags: UInt32
    /// The `IORING_FEAT_*` bits the kernel reported.
    public let features: UInt32
    /// How many times this ring entered the kernel to submit or wait (each call is one `io_uring_enter`).
    public private(set) var enterCount: UInt64 = 0
    /// How many submission entries were prepared.
    public var submissionCount: UInt64 { _submissionCount }
    @usableFromInline var _submissionCount: UInt64 = 0

    public init(entries: UInt32, sqpoll: Bool = false, sqpollCPU: Int32? = nil) throws(RingError) {
        let raw = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        raw.initialize(to: io_uring())
        var params = io_uring_params()
        var lastError: Int32 = 0
        var accepted = false
        for flags in Self.setupAttempts(sqpoll: sqpoll) {
            params = io_uring_params()
            params.flags = flags
            if flags & IORING_SETUP_SQPOLL != 0 {
                params.sq_thread_idle = 1000
                if let cpu = sqpollCPU {
                    params.flags |= IORING_SETUP_SQ_AFF
                    params.sq_thread_cpu = UInt32(cpu)
                }
            }
            let result = io_uring_queue_init_params(entries, raw, &params)
            if result == 0 {
                accepted = true
                break
            }
            lastError = -result
            // EINVAL means "this kernel does not know one of these flags": try the next, simpler setup.
            if lastError != EINVAL { break }
        }
        guard accepted else {
            raw.deallocate()
            throw RingError(operation: "io_uring_setup", errno: lastError)
        }
        self.raw = raw
        setupFlags = params.flags
        features = params.features
        completionBatchCapacity = 512
        completionBatch = .allocate(capacity: Int(completionBatchCapacity))
    }

    deinit {
        io_uring_queue_exit(raw)
        raw.deallocate()
        completionBatch.deallocate()
    }

    private static func setupAttempts(sqpoll: Bool) -> [UInt32] {
        if sqpoll {
            return [IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER, IORING_SETUP_SQPOLL]
        }
        return [
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
            IORING_SETUP_COOP_TASKRUN,
            0,
        ]
    }

    /// The next free submission entry, flushing the queue to the kernel first when it is full.
    @inlinable @inline(__always)
    public mutating func nextSubmission() -> UnsafeMutablePointer<io_uring_sqe> {
        _submissionCount &+= 1
        if let sqe = io_uring_get_sqe(raw) { return sqe }
        flushForSpace { io_uring_sq_space_left($0) > 0 }
        return io_uring_get_sqe(raw)!
    }

    /// Submits until `hasRoom`. Under SQPOLL the kernel thread consumes entries on its own time: wait for it.
    /// Without it a submit consumes everything unless the kernel is short of completion space (EBUSY on
    /// kernels without `IORING_FEAT_NODROP` guarantees): then wait for a completion to free some.
    @usableFromInline mutating func flushForSpace(_ hasRoom: (UnsafeMutablePointer<io_uring>) -> Bool) {
        var result = submit()
        while !hasRoom(raw) {
            if usesSubmissionPolling {
                _ = io_uring_sqring_wait(raw)
            } else {
                if result <= 0 { _ = submitAndWait(1) }
                result = submit()
            }
        }
    }

    /// Makes room for `count` entries, flushing the queue to the kernel first when it has less: linked
    /// entries must reach the kernel in the same submit, or the link is lost (a connect without its timeout).
    @inlinable @inline(__always)
    public mutating func reserve(_ count: UInt32) {
        guard io_uring_sq_space_left(raw) < count else { return }
        flushForSpace { io_uring_sq_space_left($0) >= count }
    }

    /// Submits what is queued without waiting.
    @discardableResult
    public mutating func submit() -> Int32 {
        enterCount &+= 1
        return io_uring_submit(raw)
    }

    /// Submits what is queued and waits until at least `count` completions are ready: one kernel entry.
    @discardableResult
    public mutating func submitAndWait(_ count: UInt32) -> Int32 {
        enterCount &+= 1
        return io_uring_submit_and_wait(raw, count)
    }

    /// Copies up to one batch of ready completions into `sink` and releases their ring slots.
    /// Returns how many were copied.
    @inlinable @inline(__always)
    public func reapCompletions(into sink: UnsafeMutablePointer<Completion>, capacity: Int) -> Int {
        let wanted = min(UInt32(capacity), completionBatchCapacity)
        let count = Int(io_uring_peek_batch_cqe(raw, completionBatch, wanted))
        for index in 0..<count {
            (sink + index).initialize(to: Completion(UnsafePointer(completionBatch[index]!)))
        }
        io_uring_cq_advance(raw, UInt32(count))
        return count
    }

    /// True when the kernel accepted `IORING_SETUP_SQPOLL` for this ring.
    public var usesSubmissionPolling: Bool { setupFlags & IORING_SETUP_SQPOLL != 0 }

    /// Names of the setup flags in effect, for the start-up log line.
    public var setupDescription: String {
        var names: [String] = []
        if setupFlags & IORING_SETUP_SQPOLL != 0 { names.append("sqpoll") }
        if setupFlags & IORING_SETUP_SINGLE_ISSUER != 0 { names.append("single-issuer") }
        if setupFlags & IORING_SETUP_DEFER_TASKRUN != 0 { names.append("defer-taskrun") }
        if setupFlags & IORING_SETUP_COOP_TASKRUN != 0 { names.append("coop-taskrun") }
        return names.isEmpty ? "plain" : names.joined(separator: "+")
    }
}
