import Dispatch

/// Prints a run's rates so far on stderr once a second.
final class ProgressPrinter: @unchecked Sendable {
    private let timer = DispatchSource.makeTimerSource(queue: .global())
    /// Touched only by the timer's handler, which never runs concurrently with itself.
    private var previous = (counters: LoadCounters(), at: UInt64(0))

    init(mode: LoadMode, startedAt: UInt64, totals: @escaping @Sendable () -> LoadCounters) {
        previous.at = startedAt
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [self] in
            let now = monotonicNanoseconds(), current = totals()
            let seconds = Double(now - previous.at) / 1e9
            let rate = Double(current.requests - previous.counters.requests) / seconds
            let megabytes = Double(current.bytes - previous.counters.bytes) / seconds / 1e6
            let measure = switch mode {
            case .rr: "\(format(rate, 0)) req/s, \(format(megabytes, 2)) MB/s"
            case .stream: "\(format(megabytes, 2)) MB/s"
            case .connect: "\(format(rate, 0)) conn/s"
            case .idle: "\(current.requests) connected"
            }
            printError("\(mode.rawValue) \(format(Double(now - startedAt) / 1e9, 0)) s: \(measure), \(current.errors) errors")
            previous = (current, now)
        }
        timer.resume()
    }

    func stop() {
        timer.cancel()
    }
}
