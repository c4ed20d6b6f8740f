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

    /// Shared words of a row, written by whichever thread observes the event. Those a pick reads come first,
    /// in the row's first 64-byte line, so that a scan of the pool touches one line per backend.
    enum HeaderWord: Int {
        case healthState, consecutiveFailures, downUntil, reserved
        /// The operator's state (`BackendAdminState`): written by runtime control, read per pick.
        case adminState
        /// When the backend last came up or joined (monotonic ms), the start of its slow-start ramp; 0: never.
        case rampStart
        case stateChanges, lastChange
        case checkSuccesses, checkFailures
    }

    public let capacity: Int
    public let shardCount: Int
    static let wordsPerCell = 16
    private let cells: UnsafeMutablePointer<Int>
    private let headers: UnsafeMutablePointer<Int>
    private let mappedBytes: Int

    public init(capacity: Int, shards: Int) {
        precondition(Counter.allCases.count <= Self.wordsPerCell)
        self.capacity = capacity
        shardCount = shards
        let cellWords = capacity * shards * Self.wordsPerCell
        let headerWords = capacity * Self.wordsPerCell
        mappedBytes = (cellWords + headerWords) * MemoryLayout<Int>.stride
        let memory = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        precondition(memory != MAP_FAILED, "cannot map \(mappedBytes) bytes for the backend table")
        cells = memory!.bindMemory(to: Int.self, capacity: cellWords + headerWords)
        headers = cells + cellWords
    }

    deinit { munmap(cells, mappedBytes) }

    @inline(__always)
    func cell(_ backend: BackendID, shard: Int) -> UnsafeMutablePointer<Int> {
        cells + (Int(backend.rawValue) * shardCount + shard) * Self.wordsPerCell
    }

    @inline(__always)
    func header(_ backend: BackendID) -> UnsafeMutablePointer<Int> {
        headers + Int(backend.rawValue) * Self.wordsPerCell
    }

    /// The writer for one worker's shard.
    public func shard(_ index: Int) -> BackendShard {
        precondition(index < shardCount)
        return BackendShard(base: cells + index * Self.wordsPerCell, stride: shardCount * Self.wordsPerCell)
    }

    /// The sum of `counter` over all shards for `backend`.
    @inline(__always)
    public func sum(_ counter: Counter, backend: BackendID) -> Int {
        var total = 0
        var word = cell(backend, shard: 0) + counter.rawValue
        for _ in 0..<shardCount {
            total &+= curing_load_relaxed(word)
            word += Self.wordsPerCell
        }
        return total
    }

    /// The health and limits of `backend`, shared by every worker and the health checker.
    @inline(__always)
    public func health(of backend: BackendID) -> BackendHealth { BackendHealth(words: header(backend)) }

    /// Zeroes a row before it is given to a new backend (no worker may be using it).
    func reset(_ backend: BackendID) {
        for shard in 0..<shardCount {
            let words = cell(backend, shard: shard)
            for index in 0..<Self.wordsPerCell { curing_store_relaxed(words + index, 0) }
        }
        for index in 0..<Self.wordsPerCell { curing_store_relaxed(header(backend) + index, 0) }
    }
}

/// One worker's view of a `BackendTable`: the only writer of its cells. It holds a plain pointer, not the
/// table, so the data plane pays no reference counting for it; whoever made it keeps the table alive.
public struct BackendShard: @unchecked Sendable {
    private let base: UnsafeMutablePointer<Int>
    private let stride: Int

    fileprivate init(base: UnsafeMutablePointer<Int>, stride: Int) {
        self.base = base
        self.stride = stride
    }

    @inline(__always)
    public func add(_ delta: Int, to counter: BackendTable.Counter, backend: BackendID) {
        let word = base + Int(backend.rawValue) * stride + counter.rawValue
        curing_store_relaxed(word, curing_load_relaxed(word) &+ delta)
    }

    @inline(__always)
    public func value(_ counter: BackendTable.Counter, backend: BackendID) -> Int {
        curing_load_relaxed(base + Int(backend.rawValue) * stride + counter.rawValue)
    }
}
