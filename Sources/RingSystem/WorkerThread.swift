import CURing
import Glibc

/// A plain pthread (the data plane needs a thread of its own, pinned, not a task on a shared pool).
package enum WorkerThread {
    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body` on a new thread named `name`, pinned to `cpu` when given.
    /// Returns the thread, or the errno of pthread_create.
    package static func start(name: String, cpu: Int?, _ body: @escaping @Sendable () -> Void) -> Result<pthread_t, RingError> {
        let context = Unmanaged.passRetained(Body {
            if let cpu { _ = curing_pin_current_thread(Int32(cpu)) }
            curing_name_current_thread(String(name.prefix(15)))
            body()
        }).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            return .failure(RingError(operation: "pthread_create", errno: result))
        }
        return .success(thread)
    }

    package static func join(_ thread: pthread_t) {
        _ = pthread_join(thread, nil)
    }
}
