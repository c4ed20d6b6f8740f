/// Idle timeouts for every connection of a worker, driven by one periodic ring timeout: a coarse hashed
/// wheel instead of one timer per connection.
///
/// Activity only stamps `lastActive` (a store per completion); a connection is looked at when its bucket
/// comes round, and either reported expired or moved to the bucket of its new deadline.
struct TimerWheel {
    static let bucketCount: UInt32 = 4096
    private var buckets: [SlotList]
    /// The bucket being emptied by `popExpired` after an `advance`.
    private var due = SlotList(\.wheelLinks)
    /// Ticks since the worker started.
    private(set) var now: UInt32 = 0
    /// Ticks of inactivity before a connection is closed; nil when idle connections are kept. A reload may
    /// change it: connections already filed are looked at again when their bucket comes round.
    var idleTicks: UInt32?

    init(idleTicks: UInt32?) {
        self.idleTicks = idleTicks
        buckets = Array(repeating: SlotList(\.wheelLinks), count: Int(Self.bucketCount))
    }

    /// Files `slot` under its deadline (its last activity plus the idle timeout).
    @inline(__always)
    mutating func schedule(_ slot: UInt32, in table: borrowing ConnectionTable) {
        guard let idleTicks else { return }
        let deadline = table[slot].pointee.lastActive &+ idleTicks
        // Beyond the wheel's horizon: park it in the farthest bucket and look again then.
        let ahead = max(1, min(deadline &- now, Self.bucketCount - 1))
        let bucket = (now &+ ahead) % Self.bucketCount
        table[slot].pointee.wheelBucket = UInt16(bucket)
        buckets[Int(bucket)].insert(slot, in: table)
    }

    @inline(__always)
    mutating func remove(_ slot: UInt32, in table: borrowing ConnectionTable) {
        guard table[slot].pointee.wheelLinks.isLinked else { return }
        buckets[Int(table[slot].pointee.wheelBucket)].remove(slot, in: table)
    }

    /// Moves to the next tick; `popExpired` then yields the connections idle for the whole timeout.
    mutating func advance() {
        now &+= 1
        let bucket = Int(now % Self.bucketCount)
        due = buckets[bucket]
        buckets[bucket] = SlotList(\.wheelLinks)
    }

    /// The next connection of the current tick's bucket that has been idle for the timeout; the others of
    /// that bucket are rescheduled on the way.
    mutating func popExpired(in table: borrowing ConnectionTable) -> UInt32? {
        guard let idleTicks else { return nil }
        while let slot = due.popFirst(in: table) {
            if now &- table[slot].pointee.lastActive >= idleTicks { return slot }
            schedule(slot, in: table)
        }
        return nil
    }
}
