import Glibc
import Logging
import Synchronization

/// A running RingProxy: N pinned workers, each with its own ring and its own `SO_REUSEPORT` socket per
/// listener, sharing the backend pools' load tables.
public final class Proxy: @unchecked Sendable {
    public let config: ProxyConfig
    public let pools: [BackendPool]
    public let counters: [WorkerCounters]
    /// The address each listener is bound to (port 0 in the config becomes the port the kernel chose).
    public private(set) var listenAddresses: [SocketAddress] = []
    private let logger: Logger
    private var controls: [WorkerControl] = []
    private var threads: [pthread_t] = []

    public init(config: ProxyConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        pools = config.listeners.map { BackendPool(backends: $0.backends, shards: config.threads) }
        counters = (0..<config.threads).map { _ in WorkerCounters() }
    }

    /// Binds the listeners and starts the workers; returns once every worker is serving, or throws the
    /// first start-up problem (with every started worker stopped again).
    public func start() throws(StartupError) {
        if let problem = RingAvailability.check() { throw .ioUring(problem) }
        let sockets = try bindListeners()
        let outcomes = Mutex<[Result<String, RingError>?]>(Array(repeating: nil, count: config.threads))
        let latch = Latch(count: config.threads)
        for index in 0..<config.threads {
            let control: WorkerControl
            do { control = try WorkerControl() } catch {
                stop()
                throw .worker(RingAvailability.explain(error))
            }
            let setup = WorkerSetup(
                index: index, config: config, listeners: sockets[index], pools: pools, counters: counters[index],
                control: control, logger: logger)
            let started = WorkerThread.start(name: "ringproxy-w\(index)", cpu: config.pin ? config.workerCPUs[index] : nil) {
                do throws(RingError) {
                    var worker = try Worker(setup)
                    outcomes.withLock { $0[index] = .success(worker.ringDescription) }
                    latch.arrive()
                    worker.run()
                } catch {
                    for listener in setup.listeners { Glibc.close(listener.fd) }
                    outcomes.withLock { $0[index] = .failure(error) }
                    latch.arrive()
                }
            }
            switch started {
            case .success(let thread):
                threads.append(thread)
                controls.append(control)
            case .failure(let error):
                for listener in sockets[index...].joined() { Glibc.close(listener.fd) }
                for _ in index..<config.threads { latch.arrive() }
                latch.wait()
                stop()
                throw .worker(RingAvailability.explain(error))
            }
        }
        latch.wait()
        let results = outcomes.withLock { $0 }
        for case .failure(let error)? in results {
            stop()
            throw .worker(RingAvailability.explain(error, lockedBytesNeeded: config.buffersPerWorker * 16 + config.ringSize * 128))
        }
        logStart(ringSetup: results.compactMap { try? $0?.get() }.first ?? "unknown")
    }

    /// Closes every connection, stops the workers and waits for their threads.
    public func stop() {
        for control in controls { control.send(.terminate) }
        for thread in threads { WorkerThread.join(thread) }
        controls.removeAll()
        threads.removeAll()
    }

    /// One socket per worker per listener; the first one resolves a port 0 that the others then share.
    private func bindListeners() throws(StartupError) -> [[ListenerSocket]] {
        var sockets = Array(repeating: [ListenerSocket](), count: config.threads)
        for (poolIndex, listener) in config.listeners.enumerated() {
            var address = listener.address
            for worker in 0..<config.threads {
                do {
                    let cpu = config.pin ? Int32(config.workerCPUs[worker]) : nil
                    let fd = try Socket.listen(on: address, backlog: 65535, incomingCPU: cpu)
                    if worker == 0, address.port == 0, let bound = Socket.localAddress(of: fd) { address = bound }
                    sockets[worker].append(ListenerSocket(fd: fd, pool: poolIndex, name: listener.name))
                } catch {
                    for socket in sockets.joined() { Glibc.close(socket.fd) }
                    throw .listen(error)
                }
            }
            listenAddresses.append(address)
        }
        return sockets
    }

    private func logStart(ringSetup: String) {
        let listeners = zip(config.listeners, listenAddresses).map { listener, address in
            "\(address) -> " + listener.backends.map { "\($0.name)@\($0.weight)" }.joined(separator: ",")
        }
        logger.info("ringproxy started", metadata: [
            "workers": "\(config.threads)",
            "pinned": "\(config.pin ? config.workerCPUs.map(String.init).joined(separator: ",") : "no")",
            "ring": "\(config.ringSize) entries (\(ringSetup))",
            "buffers": "\(config.buffersPerWorker) x \(config.bufferSize) B per worker (\(config.bufferBytesPerWorker >> 20) MiB)",
            "listeners": "\(listeners.joined(separator: "; "))",
            "max_connections": "\(config.maxConnections)",
        ])
    }
}

/// Why the proxy could not start, worded as one line for the operator.
public enum StartupError: Error, CustomStringConvertible, Sendable {
    case ioUring(String)
    case listen(SocketError)
    case worker(String)

    public var description: String {
        switch self {
        case .ioUring(let message), .worker(let message): message
        case .listen(let error): error.description
        }
    }
}
