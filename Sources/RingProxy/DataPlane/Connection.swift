import Glibc

/// One slot of a worker's connection table: the tunnel's state machine plus what the worker keeps for it
/// (sockets, chosen backend, timer and list links). A trivial type in mapped memory: no ARC, no allocation.
///
/// Every connection of a worker has one, so it is kept small (168 bytes; `ConnectionLayoutTests` holds it to
/// 176 at most): fields go widest first so that nothing is padded (Swift lays them out in this order), and
/// what only the access log reads (the client's address, the time it was accepted) sits in side tables of
/// `ConnectionTable`.
struct Connection {
    /// `listener` of a connection whose listener a reload removed.
    static let noListener = UInt16.max

    /// The hash of the client's IP address, for `source-hash` pools (0 when not needed).
    var clientKey: UInt64 = 0
    /// The bytes carried each way, for the access log.
    var bytesUpstream: UInt64 = 0
    var bytesDownstream: UInt64 = 0
    var tunnel: Tunnel
    var generation: UInt32
    var clientFD: Int32
    var backendFD: Int32 = -1
    /// The backend's row while a connect is in flight or established; -1 otherwise.
    var backend = BackendID(Int32(-1))
    /// The worker tick of the last completion, for the idle timeout.
    var lastActive: UInt32
    /// The worker tick at which each direction's send in flight was submitted (upstream, downstream): one
    /// stuck for whole ticks marks a reader that stopped.
    var sendStarted: (upstream: UInt32, downstream: UInt32) = (0, 0)
    var wheelLinks = SlotLinks()
    var wheelBucket: UInt16 = 0
    /// Links in the one wait list a connection can be on: waiting for a receive buffer (established), for a
    /// file descriptor to connect with (connecting), or for its peer to take the last bytes (lingering).
    var waitLinks = SlotLinks()
    /// Index of the listener (in the worker's current plan) the client came in on.
    var listener: UInt16
    var tried = BackendSet()
    /// This connection holds one of its backend's `max_connections` slots.
    var holdsReservation = false
    /// This connection is the trial of a backend marked down: its connect decides the backend's health.
    var isTrial = false
    /// Closed for a failure, its reset waits until the surviving peer has acknowledged every byte sent to it
    /// (in the worker's `lingering` list, through `waitLinks`).
    var isLingering = false

    @inline(__always)
    func fd(_ side: Side) -> Int32 { side == .client ? clientFD : backendFD }

    @inline(__always)
    var hasBackend: Bool { backend.rawValue >= 0 }
}

/// A worker's fixed-capacity table of connections, indexed by slot. Memory is mapped once, up front, and
/// touched only as slots are first used; freed slots are reused last-in first-out so hot memory stays hot.
/// `table[slot].field = value` writes the field in place.
///
/// Beside each slot is room for its PROXY protocol header, touched only by pools that send one, for the
/// address its backend connect reads, and, for the access log, its client's address and when it was accepted.
struct ConnectionTable: ~Copyable {
    static let headerStride = 128
    /// An IPv4 or IPv6 socket address (`sockaddr_in6`, 28 bytes, is the larger).
    static let addressStride = 32
    let capacity: Int
    private let slots: MappedArray<Connection>
    private let freeSlots: MappedArray<UInt32>
    /// Every slot's PROXY header, then every slot's backend address, then every slot's client address (apart,
    /// so that what every connection touches, its backend address, shares pages with no other kind). Sends and
    /// connects read them from here (`headerOffset`, `holdAddress`).
    let rooms: MappedRegion
    private let openedAt: MappedArray<Int64>
    private var freeCount = 0
    /// Slots below this have been initialised at least once.
    private(set) var highWater: UInt32 = 0
    private(set) var active = 0

    init(capacity: Int) {
        self.capacity = capacity
        slots = MappedArray(count: capacity, purpose: "the connection table")
        freeSlots = MappedArray(count: capacity, purpose: "the connection table's free list")
        rooms = MappedRegion(byteCount: capacity * (Self.headerStride + 2 * Self.addressStride), purpose: "the connections' headers and addresses")
        openedAt = MappedArray(count: capacity, purpose: "the connections' accept times")
    }

    /// Where in `rooms` slot `slot` keeps its PROXY protocol header until it is sent (`headerStride` bytes).
    @inline(__always)
    func headerOffset(of slot: UInt32) -> Int { Int(slot) * Self.headerStride }

    @inline(__always)
    private func addressOffset(of slot: UInt32) -> Int { capacity * Self.headerStride + Int(slot) * Self.addressStride }

    private func clientAddressOffset(of slot: UInt32) -> Int {
        capacity * (Self.headerStride + Self.addressStride) + Int(slot) * Self.addressStride
    }

    func keepHeader(_ header: [UInt8], for slot: UInt32) {
        precondition(header.count <= Self.headerStride, "a PROXY header is \(ProxyProtocolVersion.maximumHeaderLength) bytes at most")
        rooms.copy(header, to: headerOffset(of: slot))
    }

    /// Copies `address` into slot `slot`'s own room and returns where in `rooms` that copy is, for its backend
    /// connect to read. The kernel reads the address when the connect is submitted, at the end of the loop
    /// turn; by then a reload may have released the plan (and the pool) the address came from, never the slot.
    @inline(__always)
    func holdAddress(_ address: SocketAddress, for slot: UInt32) -> Int {
        precondition(Int(address.length) <= Self.addressStride, "a backend address is IPv4 or IPv6")
        let offset = addressOffset(of: slot)
        address.withSockaddr { rooms.copy(from: $0, count: Int($1), to: offset) }
        return offset
    }

    /// Keeps the client's address for the access log: by the time a connection closes, a client that reset
    /// has no address left to ask for.
    func keepClientAddress(_ address: SocketAddress?, for slot: UInt32) {
        let offset = clientAddressOffset(of: slot)
        rooms.zero(count: Self.addressStride, at: offset)
        address?.withSockaddr { rooms.copy(from: $0, count: min(Int($1), Self.addressStride), to: offset) }
    }

    /// The address `keepClientAddress` kept for the connection in `slot`.
    func clientAddress(of slot: UInt32) -> SocketAddress? {
        let offset = clientAddressOffset(of: slot)
        return SocketAddress(bytes: rooms.address(at: offset), capacity: Self.addressStride)
    }

    /// When the connection in `slot` was accepted (monotonic milliseconds), for the access log.
    func openedAt(of slot: UInt32) -> Int64 { openedAt[Int(slot)] }
    func setOpenedAt(_ milliseconds: Int64, for slot: UInt32) { openedAt[Int(slot)] = milliseconds }

    var isFull: Bool { active == capacity }

    @inline(__always)
    subscript(slot: UInt32) -> Connection {
        _read { yield slots[Int(slot)] }
        nonmutating _modify { yield &slots[Int(slot)] }
    }

    /// Feeds `event` to the tunnel in `slot`, in place. (A mutating call through the subscript, as in
    /// `table[slot].tunnel.handle(...)`, makes Swift 6.3's ThreadSanitizer instrumentation emit invalid IR,
    /// "Invalid bitcast", a compiler crash under `make test-tsan`; through the mapped array it does not.)
    @inline(__always)
    func handle(_ event: TunnelEvent, at slot: UInt32, links: borrowing BufferLinks, into actions: inout TunnelActions) {
        slots[Int(slot)].tunnel.handle(event, links: links, into: &actions)
    }

    /// True when `slot` holds a live connection of `generation`.
    @inline(__always)
    func isLive(_ slot: UInt32, generation: UInt32) -> Bool {
        slot < highWater && slots[Int(slot)].generation == generation && slots[Int(slot)].tunnel.phase != .closed
    }

    /// Takes a slot and initialises it for a new client; nil when the table is full.
    @inline(__always)
    mutating func open(client: Int32, listener: UInt16, tunnel: Tunnel, now: UInt32) -> UInt32? {
        let slot: UInt32
        let generation: UInt32
        if freeCount > 0 {
            freeCount -= 1
            slot = freeSlots[freeCount]
            generation = (slots[Int(slot)].generation &+ 1) & UserData.generationMask
        } else if Int(highWater) < capacity {
            slot = highWater
            highWater += 1
            generation = 0
        } else {
            return nil
        }
        slots[Int(slot)] = Connection(tunnel: tunnel, generation: generation, clientFD: client, lastActive: now, listener: listener)
        active += 1
        return slot
    }

    @inline(__always)
    mutating func free(_ slot: UInt32) {
        freeSlots[freeCount] = slot
        freeCount += 1
        active -= 1
    }
}

/// Links of an intrusive doubly-linked list threaded through connection slots.
struct SlotLinks {
    static let none = UInt32.max
    var next = SlotLinks.none
    var prev = SlotLinks.none
    /// The list the slot is on (`.none` when on none). Lists that share one set of links (the wait lists)
    /// must tell their own members from another's: removing a slot through the wrong list would cut that
    /// list's head loose.
    var list = SlotList.ID.none
}

/// An intrusive list of slots (the timer wheel's buckets, the wait lists): O(1) insert and
/// remove, no allocation.
struct SlotList {
    enum ID: UInt8 {
        case none, wheel, starved, awaitingDescriptor, lingering
    }

    private(set) var head = SlotLinks.none
    let links: WritableKeyPath<Connection, SlotLinks>
    let id: ID

    init(_ links: WritableKeyPath<Connection, SlotLinks>, _ id: ID) {
        self.links = links
        self.id = id
    }

    var isEmpty: Bool { head == SlotLinks.none }

    /// Adds `slot` unless it is on a list of these links already (this one or another).
    @inline(__always)
    mutating func insert(_ slot: UInt32, in table: borrowing ConnectionTable) {
        guard table[slot][keyPath: links].list == .none else { return }
        table[slot][keyPath: links] = SlotLinks(next: head, prev: SlotLinks.none, list: id)
        if head != SlotLinks.none { table[head][keyPath: links].prev = slot }
        head = slot
    }

    /// Removes `slot` if it is on this list.
    @inline(__always)
    mutating func remove(_ slot: UInt32, in table: borrowing ConnectionTable) {
        let node = table[slot][keyPath: links]
        guard node.list == id else { return }
        if node.prev != SlotLinks.none { table[node.prev][keyPath: links].next = node.next } else { head = node.next }
        if node.next != SlotLinks.none { table[node.next][keyPath: links].prev = node.prev }
        table[slot][keyPath: links] = SlotLinks()
    }

    /// Removes and returns the first slot.
    @inline(__always)
    mutating func popFirst(in table: borrowing ConnectionTable) -> UInt32? {
        guard head != SlotLinks.none else { return nil }
        let slot = head
        remove(slot, in: table)
        precondition(head != slot, "a slot list's head is not its own member")
        return slot
    }
}
