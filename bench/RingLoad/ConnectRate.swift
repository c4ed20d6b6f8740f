import ArgumentParser
import Glibc
import RingIO
import RingSystem

struct ConnectRateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Connection rate: connect, send one request, read it back (echo), close; repeat.",
        discussion: "The latency is that of the whole connect, exchange and close."
    )

    @OptionGroup var client: ClientOptions
    @OptionGroup var length: RunLength

    @Option(help: "Connections at once.")
    var concurrency = 1

    @Option(help: "Request (and response) size in bytes.")
    var size = 64

    func validate() throws {
        try client.validate(connections: concurrency, flag: "concurrency")
        guard size >= 1, size <= 1 << 24 else { throw ValidationError("--size must be from 1 byte to 16 MiB") }
    }

    func run() throws {
        let run = LoadRun(RunDescription(
            mode: .connect,
            title: "connect \(client.target): \(concurrency) at once, \(size) B exchanges, \(client.threads) threads",
            target: client.target, connections: concurrency, threads: client.threads), options: client)
        let deadline = length.deadline(from: monotonicNanoseconds())
        let (concurrency, size, requests, timeout) = (concurrency, size, length.requests, client.timeout)
        try run.execute { thread in
            ConnectRateClient(
                concurrency: run.share(of: concurrency, thread: thread), size: size,
                connections: requests.map { run.share(of: $0, thread: thread) }, deadline: deadline, timeout: timeout)
        }
    }
}

/// One thread of `ringload connect`: each slot opens a connection, exchanges one request, closes it, and
/// opens the next, while the deadline and the connection budget allow.
struct ConnectRateClient: LoadClient, ~Copyable {
    private struct Attempt {
        var startedAt: UInt64 = 0
        var sent = 0
        var received = 0
    }

    private(set) var result = LoadResult()
    private var table: ConnectionTable<Attempt>
    private let size: Int
    private let deadline: UInt64
    /// Connections not yet attempted.
    private var budget: Int
    private let bytes: UnsafeMutableRawPointer

    init(concurrency: Int, size: Int, connections: Int?, deadline: UInt64, timeout: Double) {
        table = ConnectionTable(count: concurrency, state: Attempt(), timeout: timeout)
        self.size = size
        self.deadline = deadline
        budget = connections ?? .max
        bytes = .allocate(byteCount: size, alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0x5A, count: size)
    }

    deinit {
        bytes.deallocate()
    }

    var isFinished: Bool { table.openCount == 0 && !mayOpen(now: monotonicNanoseconds()) }

    mutating func start(on ring: inout ClientRing) {
        openEmptySlots(now: monotonicNanoseconds(), on: &ring)
    }

    mutating func handle(_ completion: Completion, on ring: inout ClientRing) {
        guard let slot = table.slot(of: completion) else { return }
        switch completion.userData.kind {
        case .connect:
            guard completion.result == 0 else { return fail(slot, .connect(errno: -completion.result), on: &ring) }
            table.madeProgress(slot)
            table.send(slot, bytes: bytes, length: size, on: &ring)
            table.receive(slot, on: &ring)
        case .send:
            guard completion.result > 0 else { return fail(slot, .send(errno: -completion.result), on: &ring) }
            table.madeProgress(slot)
            result.bytesSent += Int(completion.result)
            table.update(slot) { $0.sent += Int(completion.result) }
            if table[slot].sent < size { table.send(slot, bytes: bytes, length: size - table[slot].sent, on: &ring) }
        case .recv:
            if completion.result == -ENOBUFS { return table.receive(slot, on: &ring) }
            guard completion.result > 0 else {
                return fail(slot, completion.result == 0 ? .closedByPeer : .recv(errno: -completion.result), on: &ring)
            }
            table.madeProgress(slot)
            result.bytesReceived += Int(completion.result)
            table.update(slot) { $0.received += Int(completion.result) }
            guard table[slot].received >= size else { return table.receive(slot, on: &ring) }
            let startedAt = table[slot].startedAt
            table.close(slot)
            let now = monotonicNanoseconds()
            _ = result.latency.record(now - startedAt)
            result.requests += 1
            open(slot, now: now, on: &ring)
        default:
            break
        }
    }

    mutating func heartbeat(_ now: UInt64, on ring: inout ClientRing) {
        result.count(.timedOut, times: table.abortStalled { _ in true })
        openEmptySlots(now: now, on: &ring)
    }

    private func mayOpen(now: UInt64) -> Bool {
        budget > 0 && now < deadline
    }

    /// Fills the slots left empty, such as by a failed socket() or a timeout.
    private mutating func openEmptySlots(now: UInt64, on ring: inout ClientRing) {
        for slot in 0..<table.count where !table.isOpen(slot) { open(slot, now: now, on: &ring) }
    }

    private mutating func open(_ slot: Int, now: UInt64, on ring: inout ClientRing) {
        guard mayOpen(now: now) else { return }
        budget -= 1
        if let failure = table.connect(slot, state: Attempt(startedAt: now), on: &ring) { result.count(failure) }
    }

    private mutating func fail(_ slot: Int, _ failure: Failure, on ring: inout ClientRing) {
        result.count(failure)
        table.abort(slot)
        open(slot, now: monotonicNanoseconds(), on: &ring)
    }
}
