import CURing
import Glibc
import RingIO
import RingSystem

/// One client thread's state machine, driven by `ClientRing.drive`.
protocol LoadClient: ~Copyable {
    var result: LoadResult { get }
    /// True once every connection is closed: the thread's part of the run is over.
    var isFinished: Bool { get }
    /// Submits the first operations (the connects).
    mutating func start(on ring: inout ClientRing)
    mutating func handle(_ completion: Completion, on ring: inout ClientRing)
    /// Called every `ClientRing.heartbeatNanoseconds`, for deadlines and timeouts.
    mutating func heartbeat(_ now: UInt64, on ring: inout ClientRing)
}

/// One client thread's io_uring, its receive buffers and the target's address: the operations every load
/// client submits, and the loop that feeds their completions to it.
struct ClientRing: ~Copyable {
    static let heartbeatNanoseconds: UInt64 = 100_000_000
    /// The user data of the completion `wake(after:)` asks for.
    static let wakeUp = UserData.ringWide(.tick, tag: 1)
    private static let heartbeat = UserData.ringWide(.tick)
    private static let completionBatch = 512

    private var ring: IORing
    private var buffers: BufferRing
    private let family: Int32
    private let addressLength: socklen_t
    private let address = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
    // The kernel reads timespecs when the entry is submitted, so they live as long as the ring.
    private let connectLimit = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    private let heartbeatInterval = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    private let wakeUpDelay = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    private let completions = UnsafeMutablePointer<Completion>.allocate(capacity: completionBatch)

    init(target: SocketAddress, connectTimeout seconds: Double) throws {
        let ring = try IORing(entries: 4096)
        buffers = try BufferRing(registeringWith: ring, group: 0, count: 4096, size: 16384)
        self.ring = ring
        family = target.family
        addressLength = target.length
        address.initialize(to: sockaddr_storage())
        target.withSockaddr { UnsafeMutableRawPointer(address).copyMemory(from: $0, byteCount: Int($1)) }
        connectLimit.initialize(to: Self.timespec(UInt64(seconds * 1e9)))
        heartbeatInterval.initialize(to: Self.timespec(Self.heartbeatNanoseconds))
        wakeUpDelay.initialize(to: __kernel_timespec())
    }

    deinit {
        address.deallocate()
        connectLimit.deallocate()
        heartbeatInterval.deallocate()
        wakeUpDelay.deallocate()
        completions.deallocate()
    }

    /// Runs `client` until it is finished, passing its counters to `publish` at every heartbeat.
    mutating func drive<Client: LoadClient & ~Copyable>(_ client: inout Client, publish: (LoadCounters) -> Void) {
        client.start(on: &self)
        ring.timeout(heartbeatInterval, userData: Self.heartbeat)
        while !client.isFinished {
            ring.submitAndWait(1)
            let count = ring.reapCompletions(into: completions, capacity: Self.completionBatch)
            for index in 0..<count {
                let completion = completions[index]
                if let buffer = completion.bufferID { buffers.recycle(buffer) }
                if completion.userData == Self.heartbeat {
                    ring.timeout(heartbeatInterval, userData: Self.heartbeat)
                    client.heartbeat(monotonicNanoseconds(), on: &self)
                    publish(client.result.counters)
                } else {
                    client.handle(completion, on: &self)
                }
            }
            buffers.publish()
        }
        publish(client.result.counters)
    }

    /// A new socket connecting to the target, bounded by the connect timeout: the file descriptor, or a
    /// negated errno when no socket could be made.
    mutating func connect(userData: UserData, timeoutUserData: UserData) -> Int32 {
        let fd = Socket.openStream(family: family)
        guard fd >= 0 else { return fd }
        ring.connect(
            fd, to: UnsafeRawPointer(address).assumingMemoryBound(to: sockaddr.self), length: addressLength,
            timeout: connectLimit, userData: userData, timeoutUserData: timeoutUserData)
        return fd
    }

    /// Receives into a buffer of the ring; the buffer is recycled before the client sees the completion,
    /// since load clients only count bytes.
    mutating func receive(_ fd: Int32, userData: UserData) {
        ring.recv(from: fd, bufferGroup: 0, pollFirst: true, userData: userData)
    }

    mutating func send(_ fd: Int32, bytes: UnsafeRawPointer, length: Int, userData: UserData) {
        ring.send(to: fd, bytes: bytes, length: UInt32(length), userData: userData)
    }

    /// Asks for one completion with `wakeUp` after `nanoseconds`; at most one may be pending.
    mutating func wake(after nanoseconds: UInt64) {
        wakeUpDelay.pointee = Self.timespec(nanoseconds)
        ring.timeout(wakeUpDelay, userData: Self.wakeUp)
    }

    private static func timespec(_ nanoseconds: UInt64) -> __kernel_timespec {
        __kernel_timespec(tv_sec: Int64(nanoseconds / 1_000_000_000), tv_nsec: Int64(nanoseconds % 1_000_000_000))
    }
}
