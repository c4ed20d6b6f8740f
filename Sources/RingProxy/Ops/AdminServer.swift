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
/// - `GET /backends`: the live table as JSON: each listener's pool, each backend's weights (file, runtime
///   override, effective), state, origin and load;
/// - `PUT /backends/<pool>/<address>` with `state=ready|drain|maint` and/or `weight=N` (a form or JSON body,
///   or the query string): runtime control (`AdminControl`); `DELETE` on the same path drops the overrides.
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

    /// The answer to a request: 401 without the token where one is needed (writes included), else what
    /// `respond(to:)` or `AdminControl` says.
    func answer(_ head: HTTPRequestHead, path: Substring, body: [UInt8] = []) -> (HTTPResponseStatus, String, [UInt8]) {
        if let token, path != "/healthz", !token.accepts(authorization: head.headers.first(name: "Authorization")) {
            counters.unauthorized.add(1, ordering: .relaxed)
            return (.unauthorized, "text/plain", Array("a bearer token is required (Authorization: Bearer <token>)\n".utf8))
        }
        if path.hasPrefix("/backends/") {
            return AdminControl(proxy: proxy, table: proxy.table).answer(method: head.method, path: path, uri: head.uri, body: body)
        }
        guard head.method == .GET else { return (.methodNotAllowed, "text/plain", Array("only GET here; PUT or DELETE /backends/<pool>/<address>\n".utf8)) }
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
        let document = BackendsDocument(generation: plan.generation, draining: isDraining, listeners: plan.listeners.map { listener in
            .init(name: listener.name, address: "\(listener.address)", balance: listener.pool.algorithm.rawValue,
                  sendProxy: listener.sendProxy?.rawValue, backends: listener.pools.flatMap { pool, prefix in
                      // A route's pool shows its backends as `pool/backend`.
                      pool.members.indices.map { index in
                          BackendsDocument.Backend(pool, index, proxy: proxy, named: prefix == listener.name ? nil : pool.name)
                      }
                  })
        })
        return Self.encode(document)
    }

    static func encode<Document: Encodable>(_ document: Document) -> Data {
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
    private var body: [UInt8] = []
    /// The most a request body may hold (a control request is a few dozen bytes).
    private static let bodyLimit = 4096

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
            body = []
        case .body(var chunk):
            // Beyond the limit the body is cut, and the request refused below.
            if body.count <= Self.bodyLimit, let bytes = chunk.readBytes(length: min(chunk.readableBytes, Self.bodyLimit + 1 - body.count)) {
                body += bytes
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first ?? ""
            let (status, contentType, body) = self.body.count > Self.bodyLimit
                ? (.payloadTooLarge, "text/plain", Array("the body is over \(Self.bodyLimit) bytes\n".utf8))
                : admin.answer(head, path: path, body: self.body)
            self.body = []
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
