import ArgumentParser

struct RequestResponseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rr",
        abstract: "Request/response load: each connection sends requests and reads whole responses.",
        discussion: """
            Closed loop by default: a connection sends its next request as soon as a response is back. With \
            --rate, open loop: requests are due at fixed times, and latency runs from when a request was due, \
            so a stalled server shows as latency even while requests wait to be sent.
            """
    )

    @OptionGroup var client: ClientOptions
    @OptionGroup var length: RunLength

    @Option(help: "Concurrent connections.")
    var connections = 1

    @Option(help: "Request size in bytes.")
    var size = 64

    @Option(help: "Response size in bytes (default: the request size, as an echo server answers).")
    var responseSize: Int?

    @Option(help: "Requests in flight on each connection.")
    var pipeline = 1

    @Option(help: "Requests per second over all connections: open loop.")
    var rate: Double?

    func validate() throws {
        try client.validate(connections: connections, flag: "connections")
        guard size >= 1, size <= 1 << 24, (responseSize ?? size) >= 1, (responseSize ?? size) <= 1 << 24 else {
            throw ValidationError("--size and --response-size must be from 1 byte to 16 MiB")
        }
        guard pipeline >= 1, pipeline * size <= 1 << 26 else {
            throw ValidationError("--pipeline must be at least 1, and --pipeline x --size at most 64 MiB")
        }
        if let rate, !(rate > 0 && rate <= 1e8) { throw ValidationError("--rate must be from 0 to 100000000 requests/s") }
    }

    func run() throws {
        let run = LoadRun(RunDescription(
            mode: .rr,
            title: "rr \(client.target): \(connections) connections, \(size) B requests, \(responseSize ?? size) B responses, "
                + "\(client.threads) threads" + (pipeline > 1 ? ", pipeline \(pipeline)" : "")
                + (rate.map { ", \(format($0, 0)) req/s offered" } ?? ""),
            target: client.target, connections: connections, threads: client.threads), options: client)
        let deadline = length.deadline(from: monotonicNanoseconds())
        let (connections, size, responseSize, pipeline, requests) = (connections, size, responseSize ?? size, pipeline, length.requests)
        let (threadRate, timeout) = (rate.map { $0 / Double(client.threads) }, client.timeout)
        try run.execute { thread in
            RequestResponseClient(RequestPlan(
                connections: run.share(of: connections, thread: thread), requestSize: size, responseSize: responseSize,
                pipeline: pipeline, requests: requests.map { run.share(of: $0, thread: thread) }, deadline: deadline,
                rate: threadRate, timeout: timeout))
        }
    }
}
