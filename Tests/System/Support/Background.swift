@testable import RingProxy

/// Work on a thread of its own, whose result the test waits for.
final class Background<Value: Sendable>: @unchecked Sendable {
    private let result = Locked<Value?>(nil)
    private let finished = Latch(count: 1)

    init(_ work: @escaping @Sendable () -> Value) {
        _ = WorkerThread.start(name: "background", cpu: nil) { [self] in
            let value = work()
            result.withLock { $0 = value }
            finished.arrive()
        }
    }

    func wait() -> Value {
        finished.wait()
        return result.withLock { $0! }
    }
}
