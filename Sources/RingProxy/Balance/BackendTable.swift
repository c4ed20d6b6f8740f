import CURing
import Glibc

/// A backend's row in the `BackendTable`. Stable for the life of the process: a reload that keeps a backend
/// (same pool, same address) keeps its row, so its counters carry on.
public struct BackendID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: Int32

    @inline(__always) public init(_ rawValue: Int32) { self.rawValue = rawValue }
    @inline(__always) public init(_ rawValue: Int) { self.rawValue = Int32(rawValue) }

    public static func < (lhs: BackendID, rhs: BackendID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// The live load of every backend, shared by all workers without locks: the heart of balancing.
///
/// One row per backend, one shard per worker, each cell on its own 128-byte line (two 64-byte lines, since
/// adjacent-line prefetch would otherwise make neighbours share). A worker writes only its own shard, so an
/// update is a relaxed load and store, never a locked instruction; readers sum the shards. Beside the cells
/// each row has a shared header (health, limits), written only on the rare events that change it.
///
/// The memory is mapped zeroed at start for `capacity` rows and touched only as rows come into use.
public final class BackendTable: @unchecked Sendable {
    /// Per-worker counters of one backend.
    public enum Counter: Int, CaseIterable, Sendable {
        /// Connections open now (connecting or established).
        case active
        /// Connections ever started (connect submitted).
        case total
        case connectFailures
        case bytesToBackend
        case bytesToClient
    }

    /// Shared words of a row, written by whichever thread observes the event.
    enum HeaderWord: Int {
        case healthState, consecutiveFailures, downUntil, reserved, stateChanges
        case checkSuccesses, checkFailures, lastChange
    }

    public let capacity: Int
    public let shardCount: Int
    static let wordsPerCell = 16
    private let memory: MappedRegion
    private let cells: SharedWords
    private let headers: SharedWords

    public init(capacity: Int, shards: Int) {
        precondition(Counter.allCases.count <= Self.wordsPerCell)
        self.capacity = capacity
        shardCount = shards
        let cellWords = capacity * shards * Self.wordsPerCell
        let headerWords = capacity * Self.wordsPerCell
        memory = MappedRegion(byteCount: (cellWords + headerWords) * MemoryLayout<Int>.stride, purpose: "the backend table")
        cells = memory.sharedWords
        headers = cells.advanced(by: cellWords)
    }

    @inline(__always)
    func cell(_ backend: BackendID, shard: Int) -> SharedWords {
        cells.advanced(by: (Int(backend.rawValue) * shardCount + shard) * Self.wordsPerCell)
    }

    @inline(__always)
    func header(_ backend: BackendID) -> SharedWords {
        headers.advanced(by: Int(backend.rawValue) * Self.wordsPerCell)
    }

    /// The writer for one worker's shard.
    public func shard(_ index: Int) -> BackendShard {
        precondition(index < shardCount)
        return BackendShard(base: cells.advanced(by: index * Self.wordsPerCell), stride: shardCount * Self.wordsPerCell)
    }

    /// The sum of `counter` over all shards for `backend`.
    @inline(__always)
    public func sum(_ counter: Counter, backend: BackendID) -> Int {
        var total = 0
        let row = cell(backend, shard: 0)
        for shard in 0..<shardCount { total &+= row.load(shard * Self.wordsPerCell + counter.rawValue) }
        return total
    }

    /// The health and limits of `backend`, shared by every worker and the health checker.
    @inline(__always)
    public func health(of backend: BackendID) -> BackendHealth { BackendHealth(words: header(backend)) }

    /// Zeroes a row before it is given to a new backend (no worker may be using it).
    func reset(_ backend: BackendID) {
        for shard in 0..<shardCount {
            let words = cell(backend, shard: shard)
            for index in 0..<Self.wordsPerCell { words.store(0, at: index) }
        }
        for index in 0..<Self.wordsPerCell { header(backend).store(0, at: index) }
    }
}

/// One worker's view of a `BackendTable`: the only writer of its cells. It holds a view of the words, not the
/// table, so the data plane pays no reference counting for it; whoever made it keeps the table alive.
public struct BackendShard: Sendable {
    private let base: SharedWords
    private let stride: Int

    fileprivate init(base: SharedWords, stride: Int) {
        self.base = base
        self.stride = stride
    }

    @inline(__always)
    public func add(_ delta: Int, to counter: BackendTable.Counter, backend: BackendID) {
        let word = Int(backend.rawValue) * stride + counter.rawValue
        base.store(base.load(word) &+ delta, at: word)
    }

    @inline(__always)
    public func value(_ counter: BackendTable.Counter, backend: BackendID) -> Int {
        base.load(Int(backend.rawValue) * stride + counter.rawValue)
    }
}
