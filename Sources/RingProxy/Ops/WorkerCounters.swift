/// One worker's counters, written only by that worker (a relaxed load and store, no locked instruction)
/// and read by anyone: the admin endpoint, the periodic report, the tests.
public final class WorkerCounters: @unchecked Sendable {
    public enum Name: Int, CaseIterable, Sendable {
        case accepted, active, closed
        case connectFailures, noBackend, backendSocketErrors
        case acceptErrors, acceptOverflows, idleTimeouts, clientAddressUnknown
        case bufferRingEmpty, zeroCopySends, resetsDeferred, spills, spilledBytes, shed
        /// Sends of several queued buffers as one message, and the buffers they carried.
        case chainSends, chainedBuffers
        case submissions, completions, kernelEnters, staleCompletions
        case bytesUpstream, bytesDownstream
        /// The routing stage (issue 12): clients routed, bytes held before connect, clients closed by reason.
        case routed, heldBytes
        case rejectedDenied, rejectedClientConnections, rejectedClientRate, rejectedProxyHeader, rejectedNoRoute
        case rejectedPrereadTimeout, rejectedPrereadBudget, rejectedProxyHeaderTimeout
    }

    /// Pages of their own, so two workers' counters never share a cache line.
    private let memory: MappedRegion
    private let values: SharedWords

    public init() {
        memory = MappedRegion(byteCount: Name.allCases.count * MemoryLayout<Int>.stride, purpose: "a worker's counters")
        values = memory.sharedWords
    }

    /// Called by the owning worker only.
    @inline(__always)
    public func add(_ delta: Int, _ name: Name) {
        values.store(values.load(name.rawValue) &+ delta, at: name.rawValue)
    }

    /// Called by the owning worker only.
    @inline(__always)
    public func set(_ newValue: Int, _ name: Name) {
        values.store(newValue, at: name.rawValue)
    }

    public subscript(name: Name) -> Int {
        values.load(name.rawValue)
    }
}

extension Array where Element == WorkerCounters {
    /// The sum of one counter over all workers.
    public func total(_ name: WorkerCounters.Name) -> Int {
        reduce(0) { $0 + $1[name] }
    }
}
