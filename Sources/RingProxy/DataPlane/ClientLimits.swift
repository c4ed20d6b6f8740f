/// Per-client limits shared by every worker, exact across them: `max_connections_per_client` and
/// `new_connections_per_client`. A fixed table of rows, each two atomic words, found by the hash of the
/// listener and the client's address: no allocation, no lock, bounded memory (`rowCount` rows of 16 bytes,
/// 1 MiB, mapped at start and touched only as rows are used).
///
/// Two clients whose hashes share a row are counted together: a collision can only make a limit bite
/// early, never let a client past it (conservative). With 65,536 rows, 1,000 busy clients share a row with
/// another with a chance of about 1.5 % each.
///
/// - `open`: connections open now. A client takes one with an atomic add and gives it back at close.
/// - `debt`: a token bucket kept as what the client owes: the high 32 bits are the millisecond (since the
///   table started, wrapping) of the last update, the low 32 bits thousandths of a token taken beyond the
///   refill. A zero word is a full bucket, so rows need no set-up and an old row never starts empty.
public final class ClientLimits: @unchecked Sendable {
    public static let rowCount = 1 << 16
    private static let wordsPerRow = 2
    private let region: MappedRegion
    private let words: SharedWords
    private let epoch = monotonicMilliseconds()

    public init() {
        let region = MappedRegion(byteCount: Self.rowCount * Self.wordsPerRow * MemoryLayout<Int>.stride, purpose: "the per-client limits")
        words = region.sharedWords
        self.region = region
    }

    /// The row of a client of `listener` (its plan id) whose address hashes to `clientKey`.
    @inline(__always)
    public static func row(listener: UInt32, clientKey: UInt64) -> Int32 {
        let mixed = (clientKey ^ (UInt64(listener) &* 0x9E37_79B9_7F4A_7C15)) &* 0xBF58_476D_1CE4_E5B9
        return Int32(truncatingIfNeeded: (mixed >> 40) & UInt64(rowCount - 1))
    }

    /// Takes one of the row's `limit` open connections; false (and nothing taken) when all are taken.
    public func open(row: Int32, limit: Int) -> Bool {
        let word = Int(row) * Self.wordsPerRow
        if words.fetchAdd(1, at: word) >= limit {
            words.fetchAdd(-1, at: word)
            return false
        }
        return true
    }

    public func close(row: Int32) {
        words.fetchAdd(-1, at: Int(row) * Self.wordsPerRow)
    }

    /// Connections open now in `row`.
    public func openConnections(row: Int32) -> Int { words.load(Int(row) * Self.wordsPerRow) }

    /// Takes a token from the row's bucket (`rate` per second, `burst` at most); false when it is empty.
    public func takeToken(row: Int32, rate: Int, burst: Int, now: Int64 = monotonicMilliseconds()) -> Bool {
        let word = Int(row) * Self.wordsPerRow + 1
        let millisecond = UInt32(truncatingIfNeeded: now - epoch)
        let capacity = UInt64(burst) * 1000
        while true {
            let old = words.load(word)
            let last = UInt32(truncatingIfNeeded: UInt64(bitPattern: Int64(old)) >> 32)
            var debt = UInt64(UInt32(truncatingIfNeeded: old))
            // A refill of `rate` tokens a second is `rate` thousandths a millisecond.
            let refill = UInt64(millisecond &- last) * UInt64(rate)
            debt = debt > refill ? debt - refill : 0
            guard debt + 1000 <= capacity else { return false }
            debt += 1000
            let new = Int(bitPattern: UInt(UInt64(millisecond) << 32 | debt))
            if words.compareExchange(at: word, expected: old, desired: new) { return true }
        }
    }
}
