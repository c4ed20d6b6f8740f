import Glibc
import RingIO
import RingSystem

/// A client thread's connections in one fixed block of memory, each with the client's per-connection
/// `State`. A slot's generation changes each time it is reopened, so completions that arrive for an
/// earlier connection in the slot are told apart and ignored.
struct ConnectionTable<State>: ~Copyable {
    private struct Entry {
        var fd: Int32 = -1
        var generation: UInt32 = 0
        var isOpen = false
        /// The heartbeat at which the connection last connected, sent or received (for `--timeout`).
        var lastProgress = 0
        var state: State
    }

    let count: Int
    private(set) var openCount = 0
    private let entries: UnsafeMutablePointer<Entry>
    private let timeoutBeats: Int
    private var beat = 0

    init(count: Int, state: State, timeout seconds: Double) {
        self.count = count
        entries = .allocate(capacity: count)
        entries.initialize(repeating: Entry(state: state), count: count)
        timeoutBeats = max(1, Int((seconds * 1e9 / Double(ClientRing.heartbeatNanoseconds)).rounded(.up)))
    }

    deinit {
        entries.deallocate()
    }

    subscript(slot: Int) -> State {
        get { entries[slot].state }
        nonmutating set { entries[slot].state = newValue }
    }

    /// Changes a slot's state in place. Use it rather than assigning through the subscript
    /// (`table[slot].sent += n`): Swift 6.3.1's ThreadSanitizer instrumentation of that form emits invalid IR
    /// and the compiler aborts, so `make test-tsan` could not build ringload.
    func update(_ slot: Int, _ change: (inout State) -> Void) { change(&entries[slot].state) }

    func isOpen(_ slot: Int) -> Bool { entries[slot].isOpen }

    /// The slot `completion` belongs to, or nil when that connection has since been closed.
    func slot(of completion: Completion) -> Int? {
        let slot = Int(completion.userData.slot)
        guard slot < count, entries[slot].isOpen,
              entries[slot].generation & UserData.generationMask == completion.userData.generation else { return nil }
        return slot
    }

    /// Opens a connection in the free slot `slot` with `state`; nil, or why no socket could be made.
    mutating func connect(_ slot: Int, state: State, on ring: inout ClientRing) -> Failure? {
        let generation = entries[slot].generation &+ 1
        let fd = ring.connect(userData: userData(.connect, slot, generation), timeoutUserData: userData(.connectTimeout, slot, generation))
        guard fd >= 0 else { return .socket(errno: -fd) }
        entries[slot] = Entry(fd: fd, generation: generation, isOpen: true, lastProgress: beat, state: state)
        openCount += 1
        return nil
    }

    mutating func receive(_ slot: Int, on ring: inout ClientRing) {
        ring.receive(entries[slot].fd, userData: userData(.recv, slot, entries[slot].generation))
    }

    mutating func send(_ slot: Int, bytes: UnsafeRawPointer, length: Int, on ring: inout ClientRing) {
        ring.send(entries[slot].fd, bytes: bytes, length: length, userData: userData(.send, slot, entries[slot].generation))
    }

    /// Notes that the connection in `slot` moved, so `closeStalled` leaves it alone.
    func madeProgress(_ slot: Int) {
        entries[slot].lastProgress = beat
    }

    /// Closes a connection with no operation in flight.
    mutating func close(_ slot: Int) {
        guard entries[slot].isOpen else { return }
        entries[slot].isOpen = false
        openCount -= 1
        Glibc.close(entries[slot].fd)
    }

    /// Closes a connection that may have operations in flight: shutting it down first ends them, since a
    /// pending receive would otherwise hold the socket open after its descriptor is closed.
    mutating func abort(_ slot: Int) {
        guard entries[slot].isOpen else { return }
        Glibc.shutdown(entries[slot].fd, Int32(SHUT_RDWR))
        close(slot)
    }

    mutating func abortAll() {
        for slot in 0..<count { abort(slot) }
    }

    /// Counts a heartbeat, then aborts each open connection that is waiting (by `isWaiting`) but has not
    /// moved for the timeout. Returns how many it aborted.
    mutating func abortStalled(where isWaiting: (State) -> Bool) -> Int {
        beat += 1
        var aborted = 0
        for slot in 0..<count where entries[slot].isOpen && beat - entries[slot].lastProgress > timeoutBeats
            && isWaiting(entries[slot].state) {
            abort(slot)
            aborted += 1
        }
        return aborted
    }

    private func userData(_ kind: OperationKind, _ slot: Int, _ generation: UInt32) -> UserData {
        UserData(kind, slot: UInt32(slot), generation: generation)
    }
}
