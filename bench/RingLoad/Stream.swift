import ArgumentParser
import Glibc
import RingIO
import RingSystem

struct StreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Bulk throughput: each connection sends as fast as it can (up), and reads everything back (both: at the end it stops sending and drains, so every byte sent is counted back)."
    )

    enum Direction: String, ExpressibleByArgument, CaseIterable {
        case up, both
    }

    @OptionGroup var client: ClientOptions

    @Option(help: "Concurrent connections.")
    var connections = 1

    @Option(help: "Seconds to run.")
    var duration: Double

    @Option(help: "up: only send (to a sink-server); both: send and read everything back (from an echo-server).")
    var direction = Direction.up

    @Option(help: "Bytes per send.")
    var chunk = 65536

    func validate() throws {
        try client.validate(connections: connections, flag: "connections")
        try validateDuration(duration)
        guard chunk >= 1, chunk <= 1 << 24 else { throw ValidationError("--chunk must be from 1 byte to 16 MiB") }
    }

    func run() throws {
        let run = LoadRun(RunDescription(
            mode: .stream,
            title: "stream \(client.target): \(connections) connections, \(direction.rawValue), \(chunk) B sends, \(client.threads) threads",
            target: client.target, connections: connections, threads: client.threads), options: client)
        let deadline = monotonicNanoseconds() + UInt64(duration * 1e9)
        let (connections, chunk, readsBack, timeout) = (connections, chunk, direction == .both, client.timeout)
        try run.execute { thread in
            StreamClient(connections: run.share(of: connections, thread: thread), chunk: chunk, readsBack: readsBack,
                         deadline: deadline, timeout: timeout)
        }
    }
}

/// One thread of `ringload stream`: every connection keeps one send of `chunk` bytes in flight and, when it
/// reads back, one receive. At the deadline a sending-only connection is closed; one that reads back stops
/// sending and drains: it closes once every byte it sent has come back, so the counts agree exactly, and a
/// connection whose echo stops short is timed out and counted.
struct StreamClient: LoadClient, ~Copyable {
    private struct Flow {
        var isConnected = false
        var isSending = false
        /// Bytes sent that have not come back yet (reading back only).
        var unechoed = 0
    }

    private(set) var result = LoadResult()
    private var table: ConnectionTable<Flow>
    private let chunk: Int
    private let readsBack: Bool
    private let deadline: UInt64
    private var isDraining = false
    private let bytes: UnsafeMutableRawPointer

    init(connections: Int, chunk: Int, readsBack: Bool, deadline: UInt64, timeout: Double) {
        table = ConnectionTable(count: connections, state: Flow(), timeout: timeout)
        self.chunk = chunk
        self.readsBack = readsBack
        self.deadline = deadline
        bytes = .allocate(byteCount: chunk, alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0x5A, count: chunk)
    }

    deinit {
        bytes.deallocate()
    }

    var isFinished: Bool { table.openCount == 0 }

    mutating func start(on ring: inout ClientRing) {
        for slot in 0..<table.count {
            if let failure = table.connect(slot, state: Flow(), on: &ring) { result.count(failure) }
        }
    }

    mutating func handle(_ completion: Completion, on ring: inout ClientRing) {
        guard let slot = table.slot(of: completion) else { return }
        switch completion.userData.kind {
        case .connect:
            guard completion.result == 0 else { return fail(slot, .connect(errno: -completion.result)) }
            table.madeProgress(slot)
            table.update(slot) { $0.isConnected = true; $0.isSending = true }
            table.send(slot, bytes: bytes, length: chunk, on: &ring)
            if readsBack { table.receive(slot, on: &ring) }
        case .send:
            guard completion.result > 0 else { return fail(slot, .send(errno: -completion.result)) }
            table.madeProgress(slot)
            let sent = Int(completion.result)
            result.bytesSent += sent
            if readsBack { table.update(slot) { $0.unechoed += sent } }
            guard isDraining else { return table.send(slot, bytes: bytes, length: chunk, on: &ring) }
            table.update(slot) { $0.isSending = false }
            if table[slot].unechoed == 0 { table.abort(slot) }
        case .recv:
            if completion.result == -ENOBUFS { return table.receive(slot, on: &ring) }
            guard completion.result > 0 else {
                return fail(slot, completion.result == 0 ? .closedByPeer : .recv(errno: -completion.result))
            }
            table.madeProgress(slot)
            let received = Int(completion.result)
            result.bytesReceived += received
            table.update(slot) { $0.unechoed -= received }
            let flow = table[slot]
            if isDraining, !flow.isSending, flow.unechoed == 0 { return table.close(slot) }
            table.receive(slot, on: &ring)
        default:
            break
        }
    }

    mutating func heartbeat(_ now: UInt64, on ring: inout ClientRing) {
        if now >= deadline, !isDraining {
            guard readsBack else { return table.abortAll() }
            isDraining = true
            // A connection with a send in flight drains when it completes; one without waits only for its echo.
            for slot in 0..<table.count where table.isOpen(slot) {
                let flow = table[slot]
                if !flow.isConnected || (!flow.isSending && flow.unechoed == 0) { table.abort(slot) }
            }
        }
        result.count(.timedOut, times: table.abortStalled { flow in flow.isConnected })
    }

    private mutating func fail(_ slot: Int, _ failure: Failure) {
        result.count(failure)
        table.abort(slot)
    }
}
