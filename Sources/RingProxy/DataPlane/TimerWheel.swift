/// Idle timeouts for every connection of a worker, driven by one periodic ring timeout: a coarse hashed
/// wheel instead of one timer per connection.
///
/// Activity only stamps `lastActive` (a store per completion); a connection is looked at when its bucket
/// comes round, and either reported expired or moved to the bucket of its new deadline.
///
/// Every open connection is filed in exactly one bucket, whether or not idle timeouts are on (with them off,
/// in the farthest bucket, looked at every `bucketCount` ticks): a reload that turns them on or shortens them
/// re-files everyone, and none is ever left linked to no list.
struct TimerWheel {
    static let bucketCount: UInt32 = 4096
    private var buckets: [SlotList]
    /// The bucket being emptied by `popExpired` after an `advance`.
    private var due = SlotList(\.wheelLinks, .wheel)
    /// Ticks since the worker started.
    private(set) var now: UInt32 = 0
    /// Ticks of inactivity before a connection is closed; nil when idle connections are kept.
    private(set) var idleTicks: UInt32?

    init(idleTicks: UInt32?) {
        self.idleTicks = idleTicks
        buckets = Array(repeating: SlotList(\.wheelLinks, .wheel), count: Int(Self.bucketCount))
    }

    private var currentBucket: UInt32 { now % Self.bucketCount }

    /// Files `slot` under its deadline (its last activity plus the idle timeout).
    @inline(__always)
    mutating func schedule(_ slot: UInt32, in table: borrowing ConnectionTable) {
        let farthest = Self.bucketCount - 1
        // Beyond the wheel's horizon (or no timeout): park it in the farthest bucket and look again then.
        // Never the current bucket: `remove` relies on that to tell a slot of `due` from a filed one.
        // Already past its deadline (a timeout just shortened): the next tick.
        let idle = now &- table[slot].lastActive
        let ahead = idleTicks.map { idle >= $0 ? 1 : max(1, min($0 - idle, farthest)) } ?? farthest
        let bucket = (now &+ ahead) % Self.bucketCount
        table[slot].wheelBucket = UInt16(bucket)
        buckets[Int(bucket)].insert(slot, in: table)
    }

    @inline(__always)
    mutating func remove(_ slot: UInt32, in table: borrowing ConnectionTable) {
        guard table[slot].wheelLinks.list == .wheel else { return }
        let bucket = UInt32(table[slot].wheelBucket)
        if bucket == currentBucket {
            due.remove(slot, in: table)
        } else {
            buckets[Int(bucket)].remove(slot, in: table)
        }
    }

    /// A reload's new idle timeout. Turned on or shortened, every connection is filed again under its new
    /// deadline (its bucket may be far later than that); lengthened or turned off, each is re-filed when its
    /// bucket comes round.
    mutating func changeTimeout(to newTicks: UInt32?, in table: borrowing ConnectionTable) {
        let old = idleTicks
        idleTicks = newTicks
        guard let newTicks, old.map({ newTicks < $0 }) ?? true else { return }
        let filed = buckets
        buckets = Array(repeating: SlotList(\.wheelLinks, .wheel), count: Int(Self.bucketCount))
        for var list in filed {
            while let slot = list.popFirst(in: table) { schedule(slot, in: table) }
        }
    }

    /// Moves to the next tick; `popExpired` then yields the connections idle for the whole timeout.
    mutating func advance() {
        now &+= 1
        let bucket = Int(currentBucket)
        due = buckets[bucket]
        buckets[bucket] = SlotList(\.wheelLinks, .wheel)
    }

    /// The next connection of the current tick's bucket that has been idle for the timeout; the others of
    /// that bucket are re-filed on the way, so the bucket is always emptied.
    mutating func popExpired(in table: borrowing ConnectionTable) -> UInt32? {
        while let slot = due.popFirst(in: table) {
            if let idleTicks, now &- table[slot].lastActive >= idleTicks { return slot }
            schedule(slot, in: table)
        }
        return nil
    }
}
