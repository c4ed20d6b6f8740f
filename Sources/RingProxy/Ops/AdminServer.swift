import FlyingFox
import FlyingSocks
import Foundation
import Logging
import Synchronization

/// The admin endpoint (`--admin`), an HTTP server (FlyingFox, on Swift concurrency's threads) well away from
/// the data plane's rings:
///
/// - `GET /metrics`: Prometheus text format (see `MetricsExporter`);
/// - `GET /healthz`: 200 `ok`, or 503 `draining` once a drain has begun (load balancers stop sending);
/// - `GET /backends`: the live table as JSON: each listener's pool, each backend's weight, health and load.
public final class AdminServer: Sendable {
    private let proxy: Proxy
    private let server: HTTPServer
    private let exporter: MetricsExporter
    private let draining = Atomic<Bool>(false)
    private let task = Mutex<Task<Void, Never>?>(nil)

    public init(proxy: Proxy, address: SocketAddress) {
        self.proxy = proxy
        exporter = MetricsExporter(proxy: proxy)
        server = address.family == AF_INET6
            ? HTTPServer(address: AdminAddress<IPv6>(address), logger: .disabled)
            : HTTPServer(address: AdminAddress<IPv4>(address), logger: .disabled)
    }

    /// Starts serving; returns the address it listens on (a port 0 becomes the kernel's choice), or throws
    /// when it cannot listen.
    public func start() throws(StartupError) -> SocketAddress {
        let outcome = Outcome<Result<SocketAddress, StartupError>>()
        let server = self.server
        let routes = Task {
            await server.appendRoute("GET /metrics") { [self] _ in
                HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                             body: Data(self.exporter.render(draining: self.isDraining).utf8))
            }
            await server.appendRoute("GET /healthz") { [self] _ in
                self.isDraining
                    ? HTTPResponse(statusCode: .serviceUnavailable, body: Data("draining\n".utf8))
                    : HTTPResponse(statusCode: .ok, body: Data("ok\n".utf8))
            }
            await server.appendRoute("GET /backends") { [self] _ in
                HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: self.backendsJSON())
            }
        }
        task.withLock {
            $0 = Task {
                await routes.value
                do {
                    try await server.run()
                } catch {
                    outcome.resolve(.failure(.admin("cannot serve the admin endpoint: \(error)")))
                }
            }
        }
        Task {
            do {
                try await server.waitUntilListening(timeout: 10)
                switch await server.listeningAddress {
                case .ip4(let host, let port)?, .ip6(let host, let port)?:
                    outcome.resolve(.success(SocketAddress(numericHost: host, port: port)!))
                default:
                    outcome.resolve(.failure(.admin("the admin endpoint listens on an unexpected address")))
                }
            } catch {
                outcome.resolve(.failure(.admin("the admin endpoint did not start listening: \(error)")))
            }
        }
        return try outcome.wait().get()
    }

    /// `/healthz` answers 503 from now on.
    public func setDraining() { draining.store(true, ordering: .relaxed) }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public func stop() {
        task.withLock { $0?.cancel() }
    }

    /// The live table: `{"generation": 2, "listeners": [{"name": ..., "backends": [...]}]}`.
    func backendsJSON() -> Data {
        let plan = proxy.plan
        let table = proxy.table
        let document = BackendsDocument(generation: plan.generation, draining: isDraining, listeners: plan.listeners.map { listener in
            .init(name: listener.name, address: "\(listener.address)", balance: listener.pool.algorithm.rawValue,
                  sendProxy: listener.sendProxy?.rawValue, backends: listener.pool.members.map { member in
                      let health = table.health(of: member.id)
                      return .init(
                          name: member.name, address: "\(member.address)", weight: member.weight,
                          maxConnections: member.maxConnections, state: "\(health.state)",
                          active: table.sum(.active, backend: member.id), total: table.sum(.total, backend: member.id),
                          connectFailures: table.sum(.connectFailures, backend: member.id),
                          bytesToBackend: table.sum(.bytesToBackend, backend: member.id),
                          bytesToClient: table.sum(.bytesToClient, backend: member.id))
                  })
        })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? encoder.encode(document)) ?? Data("{}".utf8)
    }
}

/// Our address handed to FlyingFox, whose socket family is a static property of the address type (one
/// type per family). Its own sockaddr_in helpers would do, but this module also sees sockaddr_in through
/// CURing, and an optimised build then finds FlyingSocks' extension on the other one.
private struct AdminAddress<Family: AddressFamily>: FlyingSocks.SocketAddress {
    static var family: sa_family_t { Family.value }
    let address: SocketAddress

    init(_ address: SocketAddress) { self.address = address }

    func withSockAddr<R, E: Error>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R) throws(E) -> R {
        try address.withSockaddr { pointer, length in Result { () throws(E) -> R in try body(pointer, length) } }.get()
    }
}

private protocol AddressFamily: Sendable { static var value: sa_family_t { get } }
private enum IPv4: AddressFamily { static var value: sa_family_t { sa_family_t(AF_INET) } }
private enum IPv6: AddressFamily { static var value: sa_family_t { sa_family_t(AF_INET6) } }

/// A value resolved once, by whichever of several tasks gets there first, and waited for by a thread.
private final class Outcome<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    private let resolved = Latch(count: 1)

    func resolve(_ newValue: Value) {
        let first = value.withLock { current in
            guard current == nil else { return false }
            current = newValue
            return true
        }
        if first { resolved.arrive() }
    }

    func wait() -> Value {
        resolved.wait()
        return value.withLock { $0! }
    }
}

/// The shape of `GET /backends`.
struct BackendsDocument: Codable, Equatable {
    struct Listener: Codable, Equatable {
        var name: String
        var address: String
        var balance: String
        var sendProxy: String?
        var backends: [Backend]
    }

    struct Backend: Codable, Equatable {
        var name: String
        var address: String
        var weight: Int
        var maxConnections: Int
        var state: String
        var active: Int
        var total: Int
        var connectFailures: Int
        var bytesToBackend: Int
        var bytesToClient: Int
    }

    var generation: Int
    var draining: Bool
    var listeners: [Listener]
}
