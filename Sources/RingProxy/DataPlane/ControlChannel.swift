import CURing
import Glibc
import Synchronization

/// How the control plane talks to a thread that runs a ring (a worker, the health checker) without a lock
/// in that thread's loop: the plans published since the thread last looked, and the phase, wait behind a
/// mutex, and an eventfd, whose read the thread keeps armed on its ring, wakes it. The thread takes them
/// only when woken, then acknowledges the plan it switched to, so a reload can wait until every thread runs
/// the new configuration.
///
/// Every plan is handed over, not only the newest: a plan's new listening sockets belong to the worker
/// from then on, and one that a later plan removes again is closed only by the worker adopting, then
/// retiring it (a worker that lags behind two reloads would otherwise leave it in the `SO_REUSEPORT` group,
/// taking connections nobody accepts).
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
    private let state: Locked<State>
    private let applied = Atomic<Int>(-1)

    init(plan: RuntimePlan) throws(RingError) {
        eventFD = eventfd(0, Int32(EFD_CLOEXEC))
        guard eventFD >= 0 else { throw RingError(operation: "eventfd", errno: errno) }
        state = Locked(State(latest: plan))
    }

    private struct State {
        var latest: RuntimePlan
        /// Published and not taken yet, oldest first.
        var unread: [RuntimePlan] = []
        var phase = Phase.running
        /// The thread has exited: nothing it would have to take is handed to it any more.
        var closed = false
    }

    deinit { Glibc.close(eventFD) }

    /// The newest plan published.
    var latest: RuntimePlan { state.withLock { $0.latest } }

    /// The plans published since the last call, oldest first, and the phase (called by the thread when its
    /// eventfd read completes).
    func take() -> (plans: [RuntimePlan], phase: Phase) {
        state.withLock { state in
            defer { state.unread = [] }
            return (state.unread, state.phase)
        }
    }

    /// Hands `plan` to the thread; false when the thread has exited, and the caller keeps what `plan` gave it.
    @discardableResult
    func publish(_ plan: RuntimePlan) -> Bool {
        let accepted = state.withLock { state in
            state.latest = plan
            guard !state.closed else { return false }
            state.unread.append(plan)
            return true
        }
        if accepted { wake() }
        return accepted
    }

    /// Called by the thread as it exits: returns the plans published and not taken, after which `publish`
    /// hands it none.
    func close() -> [RuntimePlan] {
        state.withLock { state in
            state.closed = true
            defer { state.unread = [] }
            return state.unread
        }
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
