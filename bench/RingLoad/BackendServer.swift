import Glibc
import RingIO
import RingSystem

/// One thread of a test backend. An echo server receives into a provided buffer, sends that buffer back,
/// and receives again; a sink server only receives. One operation in flight per connection, so a
/// connection's slot is its file descriptor.
struct BackendServer: ~Copyable {
    enum Mode {
        case echo, sink
    }

    private let mode: Mode
    private var ring: IORing
    private var buffers: BufferRing
    private let listeners: [Int32]
    /// Per fd: the buffer being echoed, its length and how much of it was sent.
    private var pending: UnsafeMutablePointer<(buffer: UInt16, length: UInt32, sent: UInt32)>
    private let capacity: Int
    private let completions = UnsafeMutablePointer<Completion>.allocate(capacity: 512)

    init(_ mode: Mode, listeners: [Int32]) throws {
        self.mode = mode
        let ring = try IORing(entries: 4096)
        buffers = try BufferRing(registeringWith: ring, group: 0, count: 4096, size: 16384)
        self.ring = ring
        self.listeners = listeners
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue)), &limit)
        capacity = Int(min(limit.rlim_cur, 1 << 20))
        pending = .allocate(capacity: capacity)
    }

    deinit {
        pending.deallocate()
        completions.deallocate()
    }

    mutating func run() {
        for (index, fd) in listeners.enumerated() {
            for _ in 0..<8 { ring.accept(listener: fd, userData: .accept(listener: UInt32(index), multishot: false)) }
        }
        while true {
            ring.submitAndWait(1)
            let count = ring.reapCompletions(into: completions, capacity: 512)
            for index in 0..<count { handle(completions[index]) }
            buffers.publish()
        }
    }

    private mutating func handle(_ completion: Completion) {
        let fd = Int32(completion.userData.slot)
        switch completion.userData.kind {
        case .accept:
            ring.accept(listener: listeners[Int(completion.userData.listener)], userData: completion.userData)
            guard completion.result >= 0, Int(completion.result) < capacity else {
                if completion.result >= 0 { Glibc.close(completion.result) }
                return
            }
            receive(completion.result)
        case .recv:
            guard completion.result > 0, let buffer = completion.bufferID else {
                if let buffer = completion.bufferID { buffers.recycle(buffer) }
                if completion.result == -ENOBUFS { return receive(fd) }
                return ring.close(fd, userData: UserData(.close, slot: UInt32(fd)))
            }
            guard mode == .echo else {
                buffers.recycle(buffer)
                return receive(fd)
            }
            pending[Int(fd)] = (buffer, UInt32(completion.result), 0)
            sendPending(fd)
        case .send:
            let state = pending[Int(fd)]
            guard completion.result > 0 else {
                buffers.recycle(state.buffer)
                return ring.close(fd, userData: UserData(.close, slot: UInt32(fd)))
            }
            let sent = state.sent + UInt32(completion.result)
            if sent < state.length {
                pending[Int(fd)].sent = sent
                return sendPending(fd)
            }
            buffers.recycle(state.buffer)
            receive(fd)
        default:
            break
        }
    }

    private mutating func receive(_ fd: Int32) {
        ring.recv(from: fd, bufferGroup: 0, pollFirst: true, userData: UserData(.recv, slot: UInt32(fd)))
    }

    private mutating func sendPending(_ fd: Int32) {
        let state = pending[Int(fd)]
        ring.send(
            to: fd, bytes: buffers.bytes(of: state.buffer) + Int(state.sent), length: state.length - state.sent,
            userData: UserData(.send, slot: UInt32(fd)))
    }
}
