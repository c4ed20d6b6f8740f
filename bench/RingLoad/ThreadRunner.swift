import Glibc

/// Runs `body` on a new thread (ring threads are long-lived pthreads, not a pool's).
func startThread(_ body: @escaping () -> Void) -> pthread_t {
    var handle = pthread_t()
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let result = pthread_create(&handle, nil, { context in
        Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, context)
    precondition(result == 0, "pthread_create: \(String(cString: strerror(result)))")
    return handle
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
