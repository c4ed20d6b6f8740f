import Synchronization

/// The live load of every backend in a pool, shared by all workers without locks.
///
/// One row per backend, one shard per worker, each cell on its own 128-byte line (two 64-byte lines, since
/// adjacent-line prefetch would otherwise make neighbours share). A worker writes only its own shard, so an
/// update is a plain relaxed load and store, never a locked instruction; readers sum the shards.
public final class BackendTable: @unchecked Sendable {
    public enum Counter: Int, CaseIterable, Sendable {
        case active, total, connectFailures, bytesToBackend, bytesToClient
    }

    public let backendCount: Int
    public let shardCount: Int
    private let cells: UnsafeMutablePointer<Atomic<Int>>
    private static let cellBytes = 128
    fileprivate static let wordsPerCell = cellBytes / MemoryLayout<Atomic<Int>>.stride

    public init(backends: Int, shards: Int) {
        precondition(Counter.allCases.count <= Self.wordsPerCell)
        backendCount = backends
        shardCount = shards
        let words = max(1, backends * shards) * Self.wordsPerCell
        let raw = UnsafeMutableRawPointer.allocate(byteCount: words * MemoryLayout<Atomic<Int>>.stride, alignment: Self.cellBytes)
        cells = raw.bindMemory(to: Atomic<Int>.self, capacity: words)
        for word in 0..<words { (cells + word).initialize(to: Atomic(0)) }
    }

    deinit {
        cells.deinitialize(count: max(1, backendCount * shardCount) * Self.wordsPerCell)
        UnsafeMutableRawPointer(cells).deallocate()
    }

    @inline(__always)
    fileprivate func cell(backend: Int, shard: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        cells + (backend * shardCount + shard) * Self.wordsPerCell
    }

    /// The writer for one worker's shard.
    public func shard(_ index: Int) -> BackendShard {
        precondition(index < shardCount)
        return BackendShard(table: self, index: index)
    }

    /// The sum of `counter` over all shards for `backend`.
    @inline(__always)
    public func sum(_ counter: Counter, backend: Int) -> Int {
        var total = 0
        for shard in 0..<shardCount {
            total &+= (cell(backend: backend, shard: shard) + counter.rawValue).pointee.load(ordering: .relaxed)
        }
        return total
    }
}

/// One worker's view of a `BackendTable`: the only writer of its cells. It holds a plain pointer, not the
/// table, so the data plane pays no reference counting for it; whoever made it keeps the table alive.
public struct BackendShard: @unchecked Sendable {
    private let base: UnsafeMutablePointer<Atomic<Int>>
    private let stride: Int

    fileprivate init(table: BackendTable, index: Int) {
        base = table.cell(backend: 0, shard: index)
        stride = table.shardCount * BackendTable.wordsPerCell
    }

    @inline(__always)
    public func add(_ delta: Int, to counter: BackendTable.Counter, backend: Int) {
        let word = base + backend * stride + counter.rawValue
        word.pointee.store(word.pointee.load(ordering: .relaxed) &+ delta, ordering: .relaxed)
    }

    @inline(__always)
    public func value(_ counter: BackendTable.Counter, backend: Int) -> Int {
        (base + backend * stride + counter.rawValue).pointee.load(ordering: .relaxed)
    }
}
