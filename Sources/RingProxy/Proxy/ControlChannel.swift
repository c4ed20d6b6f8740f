import CURing
import Glibc
import Synchronization

/// How the control plane talks to a thread that runs a ring (a worker, the health checker) without a lock
/// in that thread's loop: the newest plan and phase wait behind a mutex, and an eventfd, whose read the
/// thread keeps armed on its ring, wakes it. The thread reads them only when woken, then acknowledges the
/// plan it switched to, so a reload can wait until every thread runs the new configuration.
public final class ControlChannel: @unchecked Sendable {
    /// Phases only move forward.
    public enum Phase: Int, Sendable, Comparable {
        case running
        /// Stop accepting; let open connections finish.
        case draining
        /// Close everything now and exit.
        case terminating

        public static func < (lhs: Phase, rhs: Phase) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    let eventFD: Int32
    private let state: Locked<(plan: RuntimePlan, phase: Phase)>
    private let applied = Atomic<Int>(-1)

    init(plan: RuntimePlan) throws(RingError) {
        eventFD = eventfd(0, Int32(EFD_CLOEXEC))
        guard eventFD >= 0 else { throw RingError(operation: "eventfd", errno: errno) }
        state = Locked((plan, .running))
    }

    deinit { Glibc.close(eventFD) }

    /// The newest plan and phase (called by the thread when its eventfd read completes).
    func read() -> (plan: RuntimePlan, phase: Phase) { state.withLock { $0 } }

    func publish(_ plan: RuntimePlan) {
        state.withLock { $0.plan = plan }
        wake()
    }

    func enter(_ phase: Phase) {
        state.withLock { $0.phase = max($0.phase, phase) }
        wake()
    }

    /// Called by the thread once it runs `generation`.
    func acknowledge(_ generation: Int) { applied.store(generation, ordering: .releasing) }

    /// True once the thread acknowledged `generation`, waiting up to `timeout`.
    func waitUntilApplied(_ generation: Int, timeout: Duration) -> Bool {
        let deadline = monotonicMilliseconds() + timeout.milliseconds
        while applied.load(ordering: .acquiring) < generation {
            if monotonicMilliseconds() > deadline { return false }
            usleep(1000)
        }
        return true
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(eventFD, &one, MemoryLayout<UInt64>.size)
    }
}
