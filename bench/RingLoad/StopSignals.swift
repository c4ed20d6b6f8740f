import Glibc

/// Blocks SIGINT and SIGTERM in the calling thread and the threads it starts afterwards, so that only
/// `waitForStopSignal` receives them.
func blockStopSignals() {
    var signals = stopSignals
    pthread_sigmask(SIG_BLOCK, &signals, nil)
}

/// Waits for SIGINT or SIGTERM (blocked beforehand), or at most `seconds` when given.
func waitForStopSignal(atMost seconds: Double? = nil) {
    var signals = stopSignals
    guard let seconds else {
        var received: Int32 = 0
        sigwait(&signals, &received)
        return
    }
    var limit = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    while sigtimedwait(&signals, nil, &limit) < 0 && errno == EINTR {}
}

private var stopSignals: sigset_t {
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGTERM)
    return signals
}
