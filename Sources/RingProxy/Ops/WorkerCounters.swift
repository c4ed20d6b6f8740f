import Synchronization

/// One worker's counters, written only by that worker (a relaxed load and store, no locked instruction)
/// and read by anyone: the admin endpoint, the periodic report, the tests.
public final class WorkerCounters: @unchecked Sendable {
    public enum Name: Int, CaseIterable, Sendable {
        case accepted, active, closed
        case connectFailures, noBackend, backendSocketErrors
        case acceptErrors, acceptOverflows, idleTimeouts, clientAddressUnknown
        case bufferRingEmpty, zeroCopySends, resetsDeferred, spills, spilledBytes, shed
        case submissions, completions, kernelEnters, staleCompletions
        case bytesUpstream, bytesDownstream
        /// The routing stage (issue 12): clients routed, bytes held before connect, clients closed by reason.
        case routed, heldBytes
        case rejectedDenied, rejectedClientConnections, rejectedClientRate, rejectedProxyHeader, rejectedNoRoute
        case rejectedPrereadTimeout, rejectedPrereadBudget
    }

    private let values: UnsafeMutablePointer<Atomic<Int>>
    private static let count = Name.allCases.count

    public init() {
        // Rounded up to whole 128-byte lines so two workers' counters never share one.
        let bytes = (Self.count * MemoryLayout<Atomic<Int>>.stride + 127) / 128 * 128
        values = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128)
            .bindMemory(to: Atomic<Int>.self, capacity: Self.count)
        for index in 0..<Self.count { (values + index).initialize(to: Atomic(0)) }
    }

    deinit {
        values.deinitialize(count: Self.count)
        UnsafeMutableRawPointer(values).deallocate()
    }

    /// Called by the owning worker only.
    @inline(__always)
    public func add(_ delta: Int, _ name: Name) {
        let value = values + name.rawValue
        value.pointee.store(value.pointee.load(ordering: .relaxed) &+ delta, ordering: .relaxed)
    }

    /// Called by the owning worker only.
    @inline(__always)
    public func set(_ newValue: Int, _ name: Name) {
        (values + name.rawValue).pointee.store(newValue, ordering: .relaxed)
    }

    public subscript(name: Name) -> Int {
        (values + name.rawValue).pointee.load(ordering: .relaxed)
    }
}

extension Array where Element == WorkerCounters {
    /// The sum of one counter over all workers.
    public func total(_ name: WorkerCounters.Name) -> Int {
        reduce(0) { $0 + $1[name] }
    }
}
