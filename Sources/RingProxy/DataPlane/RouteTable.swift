/// What the routing stage keeps for one connection slot, beside the connection table (the slot itself stays
/// as small as plain listeners need it). Zeroed memory (the entry of a slot only plain listeners have used,
/// which is released like any other) reads as an idle entry, on no list, holding nothing.
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
    /// The decided pool: an index into the listener's `RoutingPlan.pools`, or `defaultPool` (`RouteTable.setPool`).
    var pool: Int16 { storedPool - 1 }
    /// The `ClientLimits` row holding one of the client's open connections; -1 for none (`RouteTable.setLimitRow`).
    var limitRow: Int32 { storedLimitRow - 1 }
    // Kept plus one, so that zeroed memory reads as the default pool and no row.
    fileprivate var storedPool: Int16 = 0
    fileprivate var storedLimitRow: Int32 = 0
    /// The reason to count and log when an aborting receive completes (nil: a stop, not counted).
    var abortReason: Rejection?
    /// The tick by which the stage must have decided.
    var deadline: UInt32 = 0
    /// The client's first bytes held (in `RouteTable.held`, after `RouteTable.headroom` bytes of room for the
    /// PROXY header towards the backend, so that header and bytes go out as one preamble).
    var heldBytes: UInt32 = 0
    /// Leading held bytes that were the client's PROXY header (stripped: never sent on).
    var stripped: UInt32 = 0
    /// Where the preamble starts in the held buffer (the PROXY header out, if any, then the held bytes past
    /// `stripped`).
    var preambleOffset: UInt32 = 0
    /// Links in the list of slots reading (`RouteTable.reading`), whose deadlines the tick checks.
    var next = SlotLinks.none
    var prev = SlotLinks.none
    var isListed = false

    /// Why the stage closes the slot at its deadline: a PROXY header still due is the balancer's fault (or a
    /// client posing as one), a ClientHello still short is the client's.
    var timeoutReason: Rejection {
        expectsHeader ? .proxyHeaderTimeout : .prereadTimeout
    }
}

/// A worker's routing state, one `RouteEntry` per connection slot and the bytes each holds: mapped once,
/// touched only by the slots of listeners that route, in use once a plan first has one (`isInUse`).
/// `routes[slot].field = value` writes the field in place; the encoded fields have setters of their own.
struct RouteTable: ~Copyable {
    /// Room before the held bytes for the PROXY header sent to the backend (`maximumHeaderLength` rounded up).
    static let headroom = 128
    private let entries: MappedArray<RouteEntry>
    /// Each slot's held bytes, from `headroom` on.
    let held: SlotBytes
    /// A plan has had a listener that routes: completions and releases go through the stage's bookkeeping.
    var isInUse = false
    /// The first slot reading; the list is in order of admission.
    private(set) var readingHead = SlotLinks.none

    init(capacity: Int) {
        entries = MappedArray(count: capacity, purpose: "the routing table")
        held = SlotBytes(count: capacity, purpose: "the routing table's held bytes")
    }

    @inline(__always)
    subscript(slot: UInt32) -> RouteEntry {
        _read { yield entries[Int(slot)] }
        nonmutating _modify { yield &entries[Int(slot)] }
    }

    /// Starts a fresh entry for a slot just opened.
    func open(_ slot: UInt32) { entries[Int(slot)] = RouteEntry() }

    func setPool(_ pool: Int16, of slot: UInt32) { entries[Int(slot)].storedPool = pool + 1 }
    func setLimitRow(_ row: Int32, of slot: UInt32) { entries[Int(slot)].storedLimitRow = row + 1 }

    /// Appends the first `count` bytes of receive buffer `buffer` to the slot's held bytes. Returns the bytes
    /// newly allocated (0 or more).
    func hold(_ slot: UInt32, from buffers: borrowing BufferRing, buffer: UInt16, count: Int) -> Int {
        let heldBytes = Int(entries[Int(slot)].heldBytes)
        let kept = held.holds(slot) ? Self.headroom + heldBytes : 0
        let grown = held.reserve(slot, Self.headroom + heldBytes + count, keeping: kept)
        held.copy(from: buffers, buffer: buffer, count: count, to: Self.headroom + heldBytes, in: slot)
        entries[Int(slot)].heldBytes = UInt32(heldBytes + count)
        return grown
    }

    /// The held bytes past the stripped PROXY header.
    func payload(_ slot: UInt32) -> ByteView {
        let entry = entries[Int(slot)]
        return held.view(slot, from: Self.headroom + Int(entry.stripped), count: Int(entry.heldBytes - entry.stripped))
    }

    /// All the held bytes, the client's PROXY header included.
    func received(_ slot: UInt32) -> ByteView {
        held.view(slot, from: Self.headroom, count: Int(entries[Int(slot)].heldBytes))
    }

    /// Frees the held bytes; returns how many bytes of memory that gave back.
    func freeHeld(_ slot: UInt32) -> Int { held.free(slot) }

    // MARK: - The reading list

    mutating func listReading(_ slot: UInt32) {
        guard !entries[Int(slot)].isListed else { return }
        entries[Int(slot)].next = readingHead
        entries[Int(slot)].prev = SlotLinks.none
        entries[Int(slot)].isListed = true
        if readingHead != SlotLinks.none { entries[Int(readingHead)].prev = slot }
        readingHead = slot
    }

    mutating func unlistReading(_ slot: UInt32) {
        let entry = entries[Int(slot)]
        guard entry.isListed else { return }
        if entry.prev != SlotLinks.none { entries[Int(entry.prev)].next = entry.next } else { readingHead = entry.next }
        if entry.next != SlotLinks.none { entries[Int(entry.next)].prev = entry.prev }
        entries[Int(slot)].isListed = false
        entries[Int(slot)].next = SlotLinks.none
        entries[Int(slot)].prev = SlotLinks.none
    }

    /// The slots reading now (a copy: the caller may unlist them as it goes).
    func readingSlots() -> [UInt32] {
        var slots: [UInt32] = []
        var slot = readingHead
        while slot != SlotLinks.none {
            slots.append(slot)
            slot = entries[Int(slot)].next
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
    /// From an `accept_proxy` source: a malformed or oversized PROXY header, or EOF before a whole one.
    case proxyHeader
    /// From an `accept_proxy` source: its PROXY header was still incomplete at `preread_timeout`.
    case proxyHeaderTimeout
    /// No route takes its server name and the listener has no default pool.
    case noRoute
    /// It had not sent enough to read its ClientHello (or to tell it has none) by `preread_timeout`.
    case prereadTimeout
    /// The worker's budget for held and spilled bytes was spent.
    case prereadBudget

    var counter: WorkerCounters.Name {
        switch self {
        case .denied: .rejectedDenied
        case .clientConnections: .rejectedClientConnections
        case .clientRate: .rejectedClientRate
        case .proxyHeader: .rejectedProxyHeader
        case .proxyHeaderTimeout: .rejectedProxyHeaderTimeout
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
        case .proxyHeaderTimeout: "proxy_header_timeout"
        case .noRoute: "no_route"
        case .prereadTimeout: "preread_timeout"
        case .prereadBudget: "preread_budget"
        }
    }
}
