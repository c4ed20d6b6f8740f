import Glibc

/// What the routing stage keeps for one connection slot, beside the connection table (the slot itself stays
/// as small as plain listeners need it).
struct RouteEntry {
    static let defaultPool: Int16 = -1

    enum Phase: UInt8 {
        /// Not routing: a plain connection, or one whose route is decided.
        case idle
        /// A receive of the client's first bytes is in flight.
        case reading
        /// The buffer ring was empty: the receive is armed again from the tick.
        case waitingForBuffers
        /// Its receive was cancelled (a deadline, a stop): the slot is closed when the receive completes.
        case aborting
    }

    var phase = Phase.idle
    /// The client connected from an `accept_proxy` source and its PROXY header is still to come.
    var expectsHeader = false
    /// The client sent EOF before the stage could decide.
    var ended = false
    /// The decided pool: an index into the listener's `RoutingPlan.pools`, or `defaultPool`.
    var pool: Int16 {
        get { storedPool - 1 }
        set { storedPool = newValue + 1 }
    }
    /// The `ClientLimits` row holding one of the client's open connections; -1 for none.
    var limitRow: Int32 {
        get { storedLimitRow - 1 }
        set { storedLimitRow = newValue + 1 }
    }
    // Kept plus one, so that zeroed memory (the entry of a slot only plain listeners have used, which is
    // released like any other) reads as the default pool and no row.
    private var storedPool: Int16 = 0
    private var storedLimitRow: Int32 = 0
    /// The reason to count and log when an aborting receive completes (nil: a stop, not counted).
    var abortReason: Rejection?
    /// The tick by which the stage must have decided.
    var deadline: UInt32 = 0
    /// The client's first bytes, after `RouteTable.headroom` bytes of room for the PROXY header towards the
    /// backend, so that header and bytes go out as one preamble.
    var held: UnsafeMutableRawPointer?
    var heldBytes: UInt32 = 0
    var heldCapacity: UInt32 = 0
    /// Leading held bytes that were the client's PROXY header (stripped: never sent on).
    var stripped: UInt32 = 0
    /// Where the preamble starts in `held` (the PROXY header out, if any, then the held bytes past `stripped`).
    var preambleOffset: UInt32 = 0
    /// Links in the list of slots reading (`RouteTable.reading`), whose deadlines the tick checks.
    var next = SlotLinks.none
    var prev = SlotLinks.none
    var isListed = false
}

/// A worker's routing state, one `RouteEntry` per connection slot: made only when a plan has a listener that
/// routes, mapped once and touched only by the slots of such listeners.
struct RouteTable {
    /// Room before the held bytes for the PROXY header sent to the backend (`maximumHeaderLength` rounded up).
    static let headroom = 128
    let capacity: Int
    private let entries: UnsafeMutablePointer<RouteEntry>
    private let mappedBytes: Int
    /// The first slot reading; the list is in order of admission.
    private(set) var readingHead = SlotLinks.none

    init(capacity: Int) {
        self.capacity = capacity
        mappedBytes = max(1, capacity) * MemoryLayout<RouteEntry>.stride
        let memory = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        precondition(memory != MAP_FAILED, "cannot map \(mappedBytes) bytes for the routing table")
        // Zeroed memory reads as an idle entry, on no list, holding nothing (see `RouteEntry.pool`).
        entries = memory!.bindMemory(to: RouteEntry.self, capacity: max(1, capacity))
    }

    /// Unmaps the table; the worker calls it once, when it ends.
    func deallocate() { munmap(entries, mappedBytes) }

    @inline(__always)
    subscript(slot: UInt32) -> UnsafeMutablePointer<RouteEntry> { entries + Int(slot) }

    /// Starts a fresh entry for a slot just opened.
    func open(_ slot: UInt32) { (entries + Int(slot)).initialize(to: RouteEntry()) }

    /// Appends `count` bytes to the slot's held bytes. Returns the bytes newly allocated (0 or more).
    func hold(_ slot: UInt32, _ bytes: UnsafeRawPointer, count: Int) -> Int {
        let entry = self[slot]
        let needed = Self.headroom + Int(entry.pointee.heldBytes) + count
        var grown = 0
        if needed > Int(entry.pointee.heldCapacity) {
            let capacity = max(needed, Int(entry.pointee.heldCapacity) * 2, 1024)
            let memory = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            if let old = entry.pointee.held {
                memory.copyMemory(from: old, byteCount: Self.headroom + Int(entry.pointee.heldBytes))
                old.deallocate()
            }
            grown = capacity - Int(entry.pointee.heldCapacity)
            entry.pointee.held = memory
            entry.pointee.heldCapacity = UInt32(capacity)
        }
        (entry.pointee.held! + Self.headroom + Int(entry.pointee.heldBytes)).copyMemory(from: bytes, byteCount: count)
        entry.pointee.heldBytes += UInt32(count)
        return grown
    }

    /// The held bytes past the stripped PROXY header.
    func payload(_ slot: UInt32) -> UnsafeRawBufferPointer {
        let entry = self[slot].pointee
        guard let held = entry.held else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: held + Self.headroom + Int(entry.stripped), count: Int(entry.heldBytes - entry.stripped))
    }

    /// All the held bytes, the client's PROXY header included.
    func received(_ slot: UInt32) -> UnsafeRawBufferPointer {
        let entry = self[slot].pointee
        guard let held = entry.held else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: held + Self.headroom, count: Int(entry.heldBytes))
    }

    /// Where the slot's preamble starts, or nil when it holds no bytes (its PROXY header, if any, is in the
    /// connection table's room, as on a plain listener).
    @inline(__always)
    func preamble(of slot: UInt32) -> UnsafeMutableRawPointer? {
        let entry = self[slot].pointee
        return entry.held.map { $0 + Int(entry.preambleOffset) }
    }

    /// Frees the held bytes; returns how many bytes of memory that gave back.
    func freeHeld(_ slot: UInt32) -> Int {
        let entry = self[slot]
        guard let held = entry.pointee.held else { return 0 }
        held.deallocate()
        let freed = Int(entry.pointee.heldCapacity)
        entry.pointee.held = nil
        entry.pointee.heldCapacity = 0
        return freed
    }

    // MARK: - The reading list

    mutating func listReading(_ slot: UInt32) {
        let entry = self[slot]
        guard !entry.pointee.isListed else { return }
        entry.pointee.next = readingHead
        entry.pointee.prev = SlotLinks.none
        entry.pointee.isListed = true
        if readingHead != SlotLinks.none { self[readingHead].pointee.prev = slot }
        readingHead = slot
    }

    mutating func unlistReading(_ slot: UInt32) {
        let entry = self[slot]
        guard entry.pointee.isListed else { return }
        let (next, prev) = (entry.pointee.next, entry.pointee.prev)
        if prev != SlotLinks.none { self[prev].pointee.next = next } else { readingHead = next }
        if next != SlotLinks.none { self[next].pointee.prev = prev }
        entry.pointee.isListed = false
        entry.pointee.next = SlotLinks.none
        entry.pointee.prev = SlotLinks.none
    }

    /// The slots reading now (a copy: the caller may unlist them as it goes).
    func readingSlots() -> [UInt32] {
        var slots: [UInt32] = []
        var slot = readingHead
        while slot != SlotLinks.none {
            slots.append(slot)
            slot = self[slot].pointee.next
        }
        return slots
    }
}

/// Why the routing stage closed a client, counted by reason (`ringproxy_worker_rejected_total{reason}`) and
/// written in the access log.
enum Rejection: UInt8, CaseIterable, Error, CustomStringConvertible {
    /// Its source is on the deny list, or not on a non-empty allow list.
    case denied
    /// It has `max_connections_per_client` open already.
    case clientConnections
    /// It opened more than `new_connections_per_client` (beyond the burst).
    case clientRate
    /// From an `accept_proxy` source: no PROXY header, or a malformed or oversized one, or it came too late.
    case proxyHeader
    /// No route takes its server name and the listener has no default pool.
    case noRoute
    /// It did not send enough to decide within `preread_timeout`.
    case prereadTimeout
    /// The worker's budget for held and spilled bytes was spent.
    case prereadBudget

    var counter: WorkerCounters.Name {
        switch self {
        case .denied: .rejectedDenied
        case .clientConnections: .rejectedClientConnections
        case .clientRate: .rejectedClientRate
        case .proxyHeader: .rejectedProxyHeader
        case .noRoute: .rejectedNoRoute
        case .prereadTimeout: .rejectedPrereadTimeout
        case .prereadBudget: .rejectedPrereadBudget
        }
    }

    var description: String {
        switch self {
        case .denied: "denied"
        case .clientConnections: "client_connections"
        case .clientRate: "client_rate"
        case .proxyHeader: "proxy_header"
        case .noRoute: "no_route"
        case .prereadTimeout: "preread_timeout"
        case .prereadBudget: "preread_budget"
        }
    }
}
