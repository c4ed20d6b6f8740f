import Glibc

/// Buffer pressure: all of a worker's connections share one pool of receive buffers, and a direction whose
/// reader has stopped keeps what it holds. When `pressureMark` buffers or more are out, backed-up directions
/// give theirs up: their unsent bytes are copied into memory of their own (a spill, allocated here and freed
/// once sent), the buffers go back to the ring, and they receive again only once the spill has gone, one
/// buffer at a time. Moving connections never copy; a stalled one costs its own memory, not the pool. Spills
/// are bounded per worker by `spillBudget`; past it, a backed-up connection is shed (closed with RST, counted).
///
/// Backed up means: holding `Tunnel.pauseAt` buffers, or holding any with its send stuck for two ticks or
/// more (a reader that stopped after a short answer, whatever the other direction does), or, for a direction
/// that spilled before, holding any with its send not done.
extension Worker {
    /// A direction's spill: the copied bytes, sent from here before anything the direction receives later.
    final class Spill {
        let memory: FixedArray<UInt8>

        init(bytes: Int) { memory = FixedArray(repeating: 0, count: bytes) }
    }

    static let spillBudgetRings = 8
    /// Ticks a send must be stuck for its direction to count as backed up: more than one whole tick.
    static let stuckTicks: UInt32 = 2
    /// Scans run once per tick while the pool is short; between ticks, while receives find the ring empty, at
    /// most once per this many loop turns, and only while scans still find something to evict.
    static let starvedScanTurns: UInt32 = 8

    @inline(__always)
    static func spillKey(_ slot: UInt32, _ direction: Direction) -> UInt32 { slot << 1 | UInt32(direction.rawValue) }

    /// Evicts (or, past the spill budget, sheds) the backed-up directions when the pool runs low.
    mutating func relievePressure() {
        guard buffers.outstanding >= pressureMark else { return }
        let newTick = pressureScanTick != wheel.now
        let starving = starvedThisTurn && lastScanEvicted && turn &- pressureScanTurn >= Self.starvedScanTurns
        guard newTick || starving else { return }
        pressureScanTick = wheel.now
        pressureScanTurn = turn
        lastScanEvicted = false
        for slot in 0..<table.highWater where table[slot].tunnel.phase == .established {
            for direction in Direction.allCases where isBackedUp(slot, direction) {
                lastScanEvicted = true
                // Bytes held by routing stages count against the same budget.
                if counters[.spilledBytes] + counters[.heldBytes] >= spillBudget {
                    counters.add(1, .shed)
                    handle(slot, .shed)
                    break
                }
                handle(slot, .evict(direction))
            }
        }
    }

    private func isBackedUp(_ slot: UInt32, _ direction: Direction) -> Bool {
        let pipe = table[slot].tunnel.pipe(direction)
        guard !pipe.queue.isEmpty, pipe.spilled == 0, pipe.send != .evicting else { return false }
        // Holding 4, or a reader already known to be slow (it spilled before) with its send not done.
        if pipe.queue.count >= Tunnel.pauseAt || (pipe.careful && pipe.isSending) { return true }
        let started = direction == .upstream ? table[slot].sendStarted.upstream : table[slot].sendStarted.downstream
        return pipe.isSending && wheel.now &- started >= Self.stuckTicks
    }

    /// Copies the unsent bytes of a chain of buffers into a spill and gives the buffers back.
    mutating func spill(_ slot: UInt32, _ direction: Direction, first: UInt16, count: UInt16, skip: UInt32, bytes: UInt32) {
        let spill = Spill(bytes: Int(bytes))
        var written = 0
        var buffer = first
        for index in 0..<count {
            let next = bufferLinks.next[Int(buffer)]
            let offset = index == 0 ? Int(skip) : 0
            let length = Int(bufferLinks.length[Int(buffer)]) - offset
            spill.memory.copy(from: buffers.bytes(of: buffer) + offset, count: length, to: written)
            written += length
            giveBack(buffer)
            buffer = next
        }
        precondition(written == Int(bytes), "a spill's length disagrees with its chain")
        spills[Self.spillKey(slot, direction)] = spill
        counters.add(1, .spills)
        counters.add(Int(bytes), .spilledBytes)
    }

    /// Sends `length` bytes of the spill from `offset`.
    mutating func sendSpill(_ slot: UInt32, _ direction: Direction, offset: UInt32, length: UInt32) {
        let spill = spills[Self.spillKey(slot, direction)]!
        ring.send(to: table[slot].fd(direction.destination), from: spill.memory, offset: Int(offset), length: length,
                  userData: userData(.send, slot, direction))
    }

    mutating func freeSpill(_ slot: UInt32, _ direction: Direction) {
        guard let spill = spills.removeValue(forKey: Self.spillKey(slot, direction)) else { return }
        counters.add(-spill.memory.count, .spilledBytes)
    }
}
