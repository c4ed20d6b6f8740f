import Logging
@testable import RingProxy
import Synchronization

/// A log handler that holds the first thread logging a message containing `trigger` inside the log call until
/// `open()`: a way to make one worker lag behind the control plane, at a point of its own choosing.
final class LogGate: @unchecked Sendable {
    private let trigger: String
    private let taken = Atomic<Bool>(false)
    private let holding = Atomic<Bool>(false)
    private let opened = Latch(count: 1)

    init(holdingOn trigger: String) { self.trigger = trigger }

    /// A thread is held.
    var isHolding: Bool { holding.load(ordering: .acquiring) }

    func open() { opened.arrive() }

    var logger: Logger { Logger(label: "ringproxy-test") { _ in Handler(gate: self) } }

    fileprivate func pass(_ message: String) {
        guard message.contains(trigger), !taken.exchange(true, ordering: .acquiringAndReleasing) else { return }
        holding.store(true, ordering: .releasing)
        opened.wait()
        holding.store(false, ordering: .releasing)
    }

    private struct Handler: LogHandler {
        let gate: LogGate
        var logLevel = Logger.Level.warning
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) { gate.pass("\(event.message)") }
    }
}
