/// `[pools.NAME]`: a named pool that listeners share through `default_pool` and `routes` (the `backend` of
/// HAProxy, the `upstream` of nginx).
public struct PoolSpec: Sendable, Equatable {
    public var name: String
    public var balance: Setting<String>?
    public var backends: [BackendSpec]?
    public var source: SettingSource

    public init(name: String, source: SettingSource) {
        self.name = name
        self.source = source
    }
}

/// One entry of a listener's `routes` (`[[listeners.routes]]` or an inline table): the client's TLS server
/// name and ALPN protocols it matches, and the pool it goes to.
public struct RouteSpec: Sendable, Equatable {
    public var sni: Setting<[String]>?
    public var alpn: Setting<[String]>?
    public var pool: Setting<String>?
    public var source: SettingSource

    public init(source: SettingSource) { self.source = source }
}

/// A listener's routing keys: the front door (issue 12). Any of them set puts a routing stage before connect.
public struct ListenerRoutingSpec: Sendable, Equatable {
    public var defaultPool: Setting<String>?
    public var routes: [RouteSpec]?
    public var acceptProxy: Setting<[String]>?
    public var allow: Setting<[String]>?
    public var deny: Setting<[String]>?
    public var maxConnectionsPerClient: Setting<Int>?
    public var newConnectionsPerClient: Setting<Int>?
    public var newConnectionsBurst: Setting<Int>?
    public var prereadMax: Setting<Int>?
    public var prereadTimeout: Setting<Duration>?

    public init() {}

    /// These keys, each one not set here taken from `defaults` (the file's top level). `default_pool` and
    /// `routes` are a listener's own: the top level has no named pools to give.
    func inheriting(_ defaults: ListenerRoutingSpec) -> ListenerRoutingSpec {
        var merged = self
        func take<Value>(_ path: WritableKeyPath<ListenerRoutingSpec, Value?>) {
            if merged[keyPath: path] == nil { merged[keyPath: path] = defaults[keyPath: path] }
        }
        take(\.acceptProxy); take(\.allow); take(\.deny)
        take(\.maxConnectionsPerClient); take(\.newConnectionsPerClient); take(\.newConnectionsBurst)
        take(\.prereadMax); take(\.prereadTimeout)
        return merged
    }

    /// Keys that need the routing stage (a `default_pool` alone only names the listener's pool).
    var needsStage: Bool {
        routes != nil || acceptProxy != nil || allow != nil || deny != nil || maxConnectionsPerClient != nil
            || newConnectionsPerClient != nil
    }
}
