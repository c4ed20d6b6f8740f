import Glibc

/// A value behind a pthread mutex, for state shared off the data path (start-up reports, the current plan,
/// the admin endpoint's series). Used instead of Synchronization.Mutex because ThreadSanitizer cannot see
/// Mutex's contended path (a futex inside libswiftSynchronization.so on Linux): a hand-over under contention
/// has no happens-before for it and reads as a race, which would make `make test-tsan` cry wolf.
package final class Locked<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
