import ArgumentParser
import Dispatch
import Glibc
import RingIO
import RingSystem
import Synchronization

/// The kinds of load `ringload` makes; the raw value is the subcommand's name.
enum LoadMode: String, Sendable {
    case rr, stream, connect, idle
}

/// What a run was asked to do, for its report.
struct RunDescription: Sendable {
    let mode: LoadMode
    let title: String
    let target: String
    let connections: Int
    let threads: Int
}

/// One run of a load client: its threads, each with its own ring, what they publish as they go, and their
/// merged result at the end.
final class LoadRun: Sendable {
    private struct Shared {
        var live: [LoadCounters]
        var results: [LoadResult]
    }

    let description: RunDescription
    private let target: SocketAddress
    private let timeout: Double
    private let quiet: Bool
    private let jsonPath: String?
    private let shared: Mutex<Shared>
    private let stopRequested = Atomic<Bool>(false)
    private let settledThreads = DispatchSemaphore(value: 0)
    private let startedAt = monotonicNanoseconds()

    init(_ description: RunDescription, options: ClientOptions) {
        self.description = description
        target = options.address
        timeout = options.timeout
        quiet = options.quiet
        jsonPath = options.json
        shared = Mutex(Shared(
            live: Array(repeating: LoadCounters(), count: description.threads),
            results: Array(repeating: LoadResult(), count: description.threads)))
    }

    /// How many of `total` (connections or requests) thread `thread` takes.
    func share(of total: Int, thread: Int) -> Int {
        total / description.threads + (thread < total % description.threads ? 1 : 0)
    }

    /// Runs one client per thread, made by `makeClient(thread)`, until each is finished; then reports.
    func execute<Client: LoadClient & ~Copyable>(
        afterStart: () -> Void = {}, _ makeClient: @escaping @Sendable (Int) -> Client
    ) throws {
        let progress = quiet ? nil : ProgressPrinter(mode: description.mode, startedAt: startedAt) { [self] in totals }
        let threads = (0..<description.threads).map { thread in
            startThread { [self] in
                var result = LoadResult()
                do {
                    var ring = try ClientRing(target: target, connectTimeout: timeout)
                    var client = makeClient(thread)
                    ring.drive(&client) { counters in shared.withLock { $0.live[thread] = counters } }
                    result = client.result
                } catch {
                    result.count(.setup("\(error)"))
                    settled(thread, result)
                }
                shared.withLock { [result] in $0.results[thread] = result }
            }
        }
        afterStart()
        for thread in threads { pthread_join(thread, nil) }
        progress?.stop()
        let elapsed = Double(monotonicNanoseconds() - startedAt) / 1e9
        let result = mergedResults()
        let report = LoadReport(description: description, elapsed: elapsed, result: result)
        print(report.text)
        flushOutput()
        if let path = jsonPath { try report.writeJSON(to: path) }
        if !report.movedAnything { throw ExitCode(1) }
    }

    /// Called by each thread once all its connections are open or have failed, with its result so far.
    func settled(_ thread: Int, _ result: LoadResult) {
        shared.withLock { $0.results[thread] = result }
        settledThreads.signal()
    }

    /// Blocks until every thread has called `settled`; returns their results so far, merged.
    func waitUntilSettled() -> LoadResult {
        for _ in 0..<description.threads { settledThreads.wait() }
        return mergedResults()
    }

    var isStopRequested: Bool { stopRequested.load(ordering: .relaxed) }

    func requestStop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    /// The merged running totals of all threads.
    var totals: LoadCounters {
        shared.withLock { $0.live.reduce(LoadCounters(), +) }
    }

    private func mergedResults() -> LoadResult {
        shared.withLock { $0.results.dropFirst().reduce(into: $0.results[0]) { $0.merge($1) } }
    }
}
