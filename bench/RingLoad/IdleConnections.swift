import ArgumentParser
import Glibc
import RingIO
import RingSystem

struct IdleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idle",
        abstract: "Open connections and hold them, idle, until SIGINT or SIGTERM (or --hold seconds).",
        discussion: "Prints 'idle: N connections open' on stdout once every connect has completed."
    )

    @OptionGroup var client: ClientOptions

    @Option(help: "Connections to open.")
    var connections = 1

    @Option(help: "Seconds to hold the connections (default: until SIGINT or SIGTERM).")
    var hold: Double?

    func validate() throws {
        try client.validate(connections: connections, flag: "connections")
        try validateDuration(hold, flag: "hold")
    }

    func run() throws {
        blockStopSignals()
        let run = LoadRun(RunDescription(
            mode: .idle, title: "idle \(client.target): \(connections) connections, \(client.threads) threads",
            target: client.target, connections: connections, threads: client.threads), options: client)
        let (connections, timeout) = (connections, client.timeout)
        try run.execute(afterStart: {
            let opened = run.waitUntilSettled()
            print(opened.requests == connections
                ? "idle: \(connections) connections open"
                : "idle: \(opened.requests) of \(connections) connections open (\(opened.failureSummary))")
            flushOutput()
            if opened.requests > 0 { waitForStopSignal(atMost: hold) }
            run.requestStop()
        }) { thread in
            IdleClient(thread: thread, connections: run.share(of: connections, thread: thread), run: run, timeout: timeout)
        }
    }
}

/// One thread of `ringload idle`: connects, tells the run once every connect has completed, then keeps a
/// receive armed on each connection (to notice the peer closing it) until the run asks it to stop.
struct IdleClient: LoadClient, ~Copyable {
    private(set) var result = LoadResult()
    private var table: ConnectionTable<Void>
    private let thread: Int
    private let run: LoadRun
    private var connecting = 0

    init(thread: Int, connections: Int, run: LoadRun, timeout: Double) {
        table = ConnectionTable(count: connections, state: (), timeout: timeout)
        self.thread = thread
        self.run = run
    }

    var isFinished: Bool { table.openCount == 0 }

    mutating func start(on ring: inout ClientRing) {
        for slot in 0..<table.count {
            if let failure = table.connect(slot, state: (), on: &ring) { result.count(failure) } else { connecting += 1 }
        }
        if connecting == 0 { run.settled(thread, result) }
    }

    mutating func handle(_ completion: Completion, on ring: inout ClientRing) {
        guard let slot = table.slot(of: completion) else { return }
        switch completion.userData.kind {
        case .connect:
            connecting -= 1
            if completion.result == 0 {
                result.requests += 1
                table.receive(slot, on: &ring)
            } else {
                fail(slot, .connect(errno: -completion.result))
            }
            if connecting == 0 { run.settled(thread, result) }
        case .recv:
            if completion.result == -ENOBUFS { return table.receive(slot, on: &ring) }
            guard completion.result > 0 else {
                return fail(slot, completion.result == 0 ? .closedByPeer : .recv(errno: -completion.result))
            }
            result.bytesReceived += Int(completion.result)
            table.receive(slot, on: &ring)
        default:
            break
        }
    }

    mutating func heartbeat(_ now: UInt64, on ring: inout ClientRing) {
        if run.isStopRequested { table.abortAll() }
    }

    private mutating func fail(_ slot: Int, _ failure: Failure) {
        result.count(failure)
        table.abort(slot)
    }
}
