import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The admin endpoint (`--admin`): an HTTP/1.1 server (SwiftNIO's HTTP codec on one event-loop thread of
/// its own) well away from the data plane's rings:
///
/// - `GET /metrics`: Prometheus text format (see `MetricsExporter`);
/// - `GET /healthz`: 200 `ok`, or 503 `draining` once a drain has begun (load balancers stop sending);
/// - `GET /backends`: the live table as JSON: each listener's pool, each backend's origin, weight, health and load.
///
/// With a token (`admin_token_file`, required beyond loopback), every path but `/healthz` (which probes call)
/// needs `Authorization: Bearer <token>`, else 401. `AdminLimits` bounds the connections and their idle time.
///
/// SwiftNIO rather than a lighter server library: FlyingFox, tried first, links FoundationNetworking and so
/// libcurl, which the static release build (`make release`) cannot link.
public final class AdminServer: Sendable {
    private let proxy: Proxy
    private let address: RingSystem.SocketAddress
    let token: AdminToken?
    let limits: AdminLimits
    let counters = AdminCounters()
    private let exporter: MetricsExporter
    private let draining = Atomic<Bool>(false)
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel = Locked<Channel?>(nil)

    public init(proxy: Proxy, address: RingSystem.SocketAddress, token: AdminToken? = nil, limits: AdminLimits = .standard) {
        self.proxy = proxy
        self.address = address
        self.token = token
        self.limits = limits
        exporter = MetricsExporter(proxy: proxy, admin: counters)
    }

    /// Starts serving; returns the address it listens on (a port 0 becomes the kernel's choice), or throws
    /// when it cannot listen.
    public func start() throws(StartupError) -> RingSystem.SocketAddress {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                // A failed initializer makes NIO close the connection at once.
                guard counters.admit(limit: limits.maxConnections) else {
                    return channel.eventLoop.makeFailedFuture(AdminConnectionRefused())
                }
                channel.closeFuture.whenComplete { [counters] _ in counters.release() }
                return channel.eventLoop.makeCompletedFuture {
                    let idle = TimeAmount.milliseconds(limits.idleTimeout.milliseconds)
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idle))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminRequestHandler(admin: self))
                }
            }
        do {
            let bound = try bootstrap.bind(host: address.host, port: Int(address.port)).wait()
            channel.withLock { $0 = bound }
            guard let local = bound.localAddress, let host = local.ipAddress, let port = local.port,
                  let listening = RingSystem.SocketAddress(numericHost: host, port: UInt16(port)) else {
                throw StartupError.admin("the admin endpoint listens on an unexpected address")
            }
            return listening
        } catch let error as StartupError {
            throw error
        } catch {
            try? group.syncShutdownGracefully()
            throw .admin("cannot serve the admin endpoint on \(address): \(error)")
        }
    }

    /// `/healthz` answers 503 from now on.
    public func setDraining() { draining.store(true, ordering: .relaxed) }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public func stop() {
        _ = try? channel.withLock { $0 }?.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// The answer to a request: 401 without the token where one is needed, else what `respond(to:)` says.
    func answer(_ head: HTTPRequestHead, path: Substring) -> (HTTPResponseStatus, String, [UInt8]) {
        if let token, path != "/healthz", !token.accepts(authorization: head.headers.first(name: "Authorization")) {
            counters.unauthorized.add(1, ordering: .relaxed)
            return (.unauthorized, "text/plain", Array("a bearer token is required (Authorization: Bearer <token>)\n".utf8))
        }
        guard head.method == .GET else { return (.methodNotAllowed, "text/plain", Array("only GET\n".utf8)) }
        return respond(to: path)
    }

    /// The answer to `GET path`: status, content type, body.
    func respond(to path: Substring) -> (HTTPResponseStatus, String, [UInt8]) {
        switch path {
        case "/metrics":
            (.ok, "text/plain; version=0.0.4; charset=utf-8", Array(exporter.render(draining: isDraining).utf8))
        case "/healthz":
            isDraining ? (.serviceUnavailable, "text/plain", Array("draining\n".utf8)) : (.ok, "text/plain", Array("ok\n".utf8))
        case "/backends":
            (.ok, "application/json", Array(backendsJSON()))
        default:
            (.notFound, "text/plain", Array("not found: try /metrics, /healthz or /backends\n".utf8))
        }
    }

    /// The live table: `{"generation": 2, "listeners": [{"name": ..., "backends": [...]}]}`.
    func backendsJSON() -> Data {
        let plan = proxy.plan
        let table = proxy.table
        let document = BackendsDocument(generation: plan.generation, draining: isDraining, listeners: plan.listeners.map { listener in
            .init(name: listener.name, address: "\(listener.address)", balance: listener.pool.algorithm.rawValue,
                  sendProxy: listener.sendProxy?.rawValue, backends: listener.pools.flatMap { pool, prefix in
                      pool.members.map { (member: $0, name: prefix == listener.name ? $0.name : "\(pool.name)/\($0.name)") }
                  }.map { member, name in
                      let health = table.health(of: member.id)
                      return .init(
                          name: name, address: "\(member.address)", origin: member.origin, weight: member.weight,
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

/// One admin connection: answers each GET as it completes (keep-alive or not, as the client asks).
private final class AdminRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let admin: AdminServer
    private var head: HTTPRequestHead?

    init(admin: AdminServer) { self.admin = admin }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else { return context.fireUserInboundEventTriggered(event) }
        admin.counters.idleClosed.add(1, ordering: .relaxed)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first ?? ""
            let (status, contentType, body) = admin.answer(head, path: path)
            var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)")])
            if status == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Bearer realm=\"ringproxy\"") }
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            let closed = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                closed.whenComplete { _ in loopBound.value.close(promise: nil) }
            }
        }
    }
}

/// Why a connection beyond `AdminLimits.maxConnections` was closed.
private struct AdminConnectionRefused: Error {}

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
        /// "file", or the DNS name the address came from.
        var origin: String
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
