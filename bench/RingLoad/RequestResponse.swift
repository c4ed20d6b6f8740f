import ArgumentParser
import CURing
import Glibc
import Histogram
import RingProxy

struct RequestResponseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rr",
        abstract: "Request/response load: each connection sends a request, waits for the whole response, repeats."
    )

    @Option(help: ArgumentHelp("Address to connect to.", valueName: "host:port"))
    var target: String

    @Option(help: "Concurrent connections.")
    var connections = 1

    @Option(help: "Request size in bytes.")
    var size = 64

    @Option(help: "Response size in bytes (default: the request size, as an echo server answers).")
    var responseSize: Int?

    @Option(help: "Seconds to run.")
    var duration = 10.0

    @Option(help: "Client threads, each with its own ring; connections are shared out.")
    var threads = 1

    func validate() throws {
        guard SocketAddress(numeric: target) != nil else { throw ValidationError("--target must be a numeric host:port, got '\(target)'") }
        guard connections >= 1, threads >= 1, threads <= connections else { throw ValidationError("need 1 <= --threads <= --connections") }
        guard size >= 1, size <= 1 << 24, (responseSize ?? size) >= 1 else { throw ValidationError("sizes must be from 1 byte to 16 MiB") }
        guard duration > 0, duration <= 86400 else { throw ValidationError("--duration must be from 0 to 86400 seconds") }
    }

    func run() throws {
        let address = SocketAddress(numeric: target)!
        let deadline = monotonicNanoseconds() + UInt64(duration * 1e9)
        let results = ResultsBox(count: threads)
        var handles: [pthread_t] = []
        let started = monotonicNanoseconds()
        for thread in 0..<threads {
            let share = connections / threads + (thread < connections % threads ? 1 : 0)
            let plan = RRPlan(target: address, connections: share, requestSize: size, responseSize: responseSize ?? size, deadline: deadline)
            var handle = pthread_t()
            let context = Unmanaged.passRetained(ThreadTask { results.store(thread, Self.runClient(plan)) }).toOpaque()
            pthread_create(&handle, nil, { context in
                Unmanaged<ThreadTask>.fromOpaque(context!).takeRetainedValue().body()
                return nil
            }, context)
            handles.append(handle)
        }
        for handle in handles { pthread_join(handle, nil) }
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        let total = results.merged()
        print(LoadReport(
            title: "rr \(target): \(connections) connections, \(size) B requests, \(responseSize ?? size) B responses, \(threads) threads",
            elapsed: elapsed, result: total).text)
        if total.requests == 0 { throw ExitCode(1) }
    }

    static func runClient(_ plan: RRPlan) -> RRResult {
        do {
            var client = try RRClient(plan)
            return client.run()
        } catch {
            var failed = RRResult()
            failed.errors["setup: \(error)", default: 0] += 1
            return failed
        }
    }
}

final class ThreadTask {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Per-thread results, merged once every thread has finished.
final class ResultsBox: @unchecked Sendable {
    private var results: [RRResult]
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(count: Int) {
        results = Array(repeating: RRResult(), count: count)
        pthread_mutex_init(lock, nil)
    }

    func store(_ index: Int, _ result: RRResult) {
        pthread_mutex_lock(lock)
        results[index] = result
        pthread_mutex_unlock(lock)
    }

    func merged() -> RRResult {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return results.dropFirst().reduce(into: results[0]) { $0.merge($1) }
    }
}

struct RRPlan {
    let target: SocketAddress
    let connections: Int
    let requestSize: Int
    let responseSize: Int
    let deadline: UInt64
}

struct RRResult {
    var requests = 0
    var bytesSent = 0
    var bytesReceived = 0
    var errors: [String: Int] = [:]
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    mutating func merge(_ other: RRResult) {
        requests += other.requests
        bytesSent += other.bytesSent
        bytesReceived += other.bytesReceived
        errors.merge(other.errors, uniquingKeysWith: +)
        latency.add(other.latency)
    }
}

/// One client thread: `connections` connections, each in a closed loop of request, whole response, record
/// the latency, next request, until the deadline.
struct RRClient: ~Copyable {
    private struct Connection {
        var fd: Int32 = -1
        var sent = 0
        var received = 0
        var startedAt: UInt64 = 0
        var open = false
    }

    private var ring: IORing
    private var buffers: BufferRing
    private let plan: RRPlan
    private let connections: UnsafeMutablePointer<Connection>
    private let request: UnsafeMutableRawPointer
    private let completions = UnsafeMutablePointer<Completion>.allocate(capacity: 512)
    private let tick = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    private let connectTimeout = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    private let address: UnsafeMutablePointer<sockaddr_storage>
    private var openCount = 0
    private var result = RRResult()

    init(_ plan: RRPlan) throws {
        let ring = try IORing(entries: 4096)
        buffers = try BufferRing(registeringWith: ring, group: 0, count: 4096, size: 16384)
        self.ring = ring
        self.plan = plan
        connections = .allocate(capacity: plan.connections)
        connections.initialize(repeating: Connection(), count: plan.connections)
        request = .allocate(byteCount: plan.requestSize, alignment: 64)
        for offset in 0..<plan.requestSize { request.storeBytes(of: UInt8(truncatingIfNeeded: offset &* 31 &+ 7), toByteOffset: offset, as: UInt8.self) }
        tick.initialize(to: __kernel_timespec(tv_sec: 0, tv_nsec: 100_000_000))
        connectTimeout.initialize(to: __kernel_timespec(tv_sec: 3, tv_nsec: 0))
        address = .allocate(capacity: 1)
        address.initialize(to: sockaddr_storage())
        plan.target.withSockaddr { UnsafeMutableRawPointer(address).copyMemory(from: $0, byteCount: Int($1)) }
    }

    deinit {
        connections.deallocate()
        request.deallocate()
        completions.deallocate()
        tick.deallocate()
        connectTimeout.deallocate()
        address.deallocate()
    }

    mutating func run() -> RRResult {
        for slot in 0..<plan.connections { connect(slot) }
        ring.timeout(tick, userData: UserData(.tick, slot: 0))
        while openCount > 0 {
            ring.submitAndWait(1)
            let count = ring.reapCompletions(into: completions, capacity: 512)
            for index in 0..<count { handle(completions[index]) }
            buffers.publish()
        }
        return result
    }

    private mutating func connect(_ slot: Int) {
        let fd = Socket.openStream(family: plan.target.family)
        guard fd >= 0 else {
            result.errors["socket: \(String(cString: strerror(-fd)))", default: 0] += 1
            return
        }
        connections[slot] = Connection(fd: fd, open: true)
        openCount += 1
        ring.connect(
            fd, to: UnsafeRawPointer(address).assumingMemoryBound(to: sockaddr.self), length: plan.target.length,
            timeout: connectTimeout, userData: UserData(.connect, slot: UInt32(slot)),
            timeoutUserData: UserData(.connectTimeout, slot: UInt32(slot)))
    }

    private mutating func handle(_ completion: Completion) {
        let slot = Int(completion.userData.slot)
        switch completion.userData.kind {
        case .tick:
            if openCount > 0 { ring.timeout(tick, userData: UserData(.tick, slot: 0)) }
        case .connect:
            guard completion.result == 0 else { return fail(slot, "connect", completion.result) }
            startRequest(slot)
        case .send:
            guard completion.result > 0 else { return fail(slot, "send", completion.result) }
            connections[slot].sent += Int(completion.result)
            result.bytesSent += Int(completion.result)
            if connections[slot].sent < plan.requestSize { sendRest(slot) } else { receive(slot) }
        case .recv:
            if let buffer = completion.bufferID { buffers.recycle(buffer) }
            if completion.result == -ENOBUFS { return receive(slot) }
            guard completion.result > 0 else {
                return fail(slot, completion.result == 0 ? "closed by peer" : "recv", completion.result)
            }
            connections[slot].received += Int(completion.result)
            result.bytesReceived += Int(completion.result)
            guard connections[slot].received >= plan.responseSize else { return receive(slot) }
            let now = monotonicNanoseconds()
            result.requests += 1
            _ = result.latency.record(now - connections[slot].startedAt)
            if now < plan.deadline { startRequest(slot) } else { finish(slot) }
        default:
            break
        }
    }

    private mutating func startRequest(_ slot: Int) {
        connections[slot].sent = 0
        connections[slot].received = 0
        connections[slot].startedAt = monotonicNanoseconds()
        sendRest(slot)
    }

    private mutating func sendRest(_ slot: Int) {
        let sent = connections[slot].sent
        ring.send(to: connections[slot].fd, bytes: request + sent, length: UInt32(plan.requestSize - sent),
                  userData: UserData(.send, slot: UInt32(slot)))
    }

    private mutating func receive(_ slot: Int) {
        ring.recv(from: connections[slot].fd, bufferGroup: 0, pollFirst: true, userData: UserData(.recv, slot: UInt32(slot)))
    }

    private mutating func fail(_ slot: Int, _ what: String, _ result: Int32) {
        let reason = result < 0 ? "\(what): \(String(cString: strerror(-result)))" : what
        self.result.errors[reason, default: 0] += 1
        finish(slot)
    }

    private mutating func finish(_ slot: Int) {
        guard connections[slot].open else { return }
        connections[slot].open = false
        openCount -= 1
        ring.close(connections[slot].fd, userData: UserData(.close, slot: UInt32(slot)))
    }
}
