import Logging
@testable import RingProxy
import Synchronization

/// A log handler that holds a thread inside the log call: the first to log a message containing
/// `triggers[0]` until the first `open()`, then the first to log `triggers[1]` until the second, and so on.
/// A way to make a worker pause at a point of the test's choosing (behind the control plane, or between
/// preparing a submission and submitting it).
final class LogGate: @unchecked Sendable {
    private let triggers: [String]
    private let releases: [Latch]
    private let next = Atomic<Int>(0)
    private let opened = Atomic<Int>(0)

    init(holdingOn triggers: [String]) {
        self.triggers = triggers
        releases = triggers.map { _ in Latch(count: 1) }
    }

    /// How many holds have begun (the held thread may still be in the last one).
    var holdsBegun: Int { next.load(ordering: .acquiring) }

    /// Releases the oldest hold not yet released (or lets its thread through when it comes).
    func open() {
        let index = opened.add(1, ordering: .relaxed).oldValue
        if index < releases.count { releases[index].arrive() }
    }

    /// Releases every hold, now and to come.
    func openAll() { while opened.load(ordering: .relaxed) < releases.count { open() } }

    var logger: Logger { Logger(label: "ringproxy-test") { _ in Handler(gate: self) } }

    fileprivate func pass(_ message: String) {
        let index = next.load(ordering: .acquiring)
        guard index < triggers.count, message.contains(triggers[index]),
              next.compareExchange(expected: index, desired: index + 1, ordering: .acquiringAndReleasing).exchanged
        else { return }
        releases[index].wait()
    }

    private struct Handler: LogHandler {
        let gate: LogGate
        var logLevel = Logger.Level.info
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) { gate.pass("\(event.message)") }
    }
}
