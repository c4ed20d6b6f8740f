import CURing
import Glibc
import Synchronization

/// How the rest of the process tells a worker what to do: a command in an atomic, and an eventfd whose
/// read the worker keeps armed on its ring, so the worker learns of it in its normal loop and never
/// takes a lock.
public final class WorkerControl: @unchecked Sendable {
    public enum Command: Int, Sendable {
        case run = 0
        /// Close every connection now and exit.
        case terminate = 1
    }

    let eventFD: Int32
    private let command = Atomic<Int>(Command.run.rawValue)

    init() throws(RingError) {
        eventFD = eventfd(0, Int32(EFD_CLOEXEC))
        guard eventFD >= 0 else { throw RingError(operation: "eventfd", errno: errno) }
    }

    deinit { Glibc.close(eventFD) }

    public var current: Command { Command(rawValue: command.load(ordering: .acquiring)) ?? .run }

    public func send(_ newCommand: Command) {
        command.store(newCommand.rawValue, ordering: .releasing)
        var one: UInt64 = 1
        _ = Glibc.write(eventFD, &one, MemoryLayout<UInt64>.size)
    }
}
