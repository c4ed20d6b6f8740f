/// Every setting as the operator gave it, before validation: read from a TOML file, from flags, or the two
/// merged (flags win). `ProxyConfig.validate` turns it into a checked configuration or a list of errors.
public struct ProxySettings: Sendable, Equatable {
    // The flat layout: one listener, named "default".
    public var host: Setting<String>?
    public var port: Setting<Int>?
    /// `--listen` addresses (`host:port`), which replace `host`/`port` from the file.
    public var listen: [Setting<String>]?
    public var backends: [BackendSpec]?
    /// `[[listeners]]`: several listeners, each with its own pool.
    public var listeners: [ListenerSpec]?
    /// `[pools.NAME]`: pools that listeners name (`default_pool`, `routes`).
    public var pools: [PoolSpec]?
    /// The pool settings of the flat listener, and the default of every `[[listeners]]` entry.
    public var balance: Setting<String>?
    public var sendProxy: Setting<String>?
    /// Source rules, per-client limits, `accept_proxy` and the preread bounds at the top level: the flat
    /// listener's, and the default of every `[[listeners]]` entry that does not set its own.
    public var routing = ListenerRoutingSpec()
    public var health = HealthSpec()

    public var threads: Setting<Int>?
    public var pin: Setting<Bool>?
    public var cpus: Setting<String>?
    public var ringSize: Setting<Int>?
    public var bufferSize: Setting<Int>?
    public var buffers: Setting<Int>?
    public var sqpoll: Setting<Bool>?
    public var zerocopy: Setting<String>?
    public var connectTimeout: Setting<Duration>?
    public var retries: Setting<Int>?
    public var idleTimeout: Setting<Duration>?
    public var maxConnections: Setting<Int>?

    public var admin: Setting<String>?
    /// A file holding the bearer token the admin endpoint requires (all but `/healthz`).
    public var adminTokenFile: Setting<String>?
    public var drainTimeout: Setting<Duration>?
    public var reportInterval: Setting<Duration>?
    public var logLevel: Setting<String>?
    public var logFormat: Setting<String>?
    public var accessLog: Setting<Bool>?
    /// DNS discovery: `resolvers`, `dns_min_ttl`, `dns_max_ttl`, `dns_hold`, `dns_start`.
    public var resolvers: Setting<[String]>?
    public var dnsMinTTL: Setting<Duration>?
    public var dnsMaxTTL: Setting<Duration>?
    public var dnsHold: Setting<Duration>?
    public var dnsStart: Setting<String>?

    /// Values that could not be read (a wrong type, an unknown key); validation reports them with the rest.
    public var problems: [ConfigIssue] = []

    public init() {}

    /// These settings with every value that `other` sets taking precedence.
    public func overridden(by other: ProxySettings) -> ProxySettings {
        var merged = self
        func take<Value>(_ path: WritableKeyPath<ProxySettings, Value?>) {
            if let value = other[keyPath: path] { merged[keyPath: path] = value }
        }
        take(\.host); take(\.port); take(\.listen); take(\.backends); take(\.listeners); take(\.pools)
        take(\.balance); take(\.sendProxy)
        take(\.threads); take(\.pin); take(\.cpus); take(\.ringSize); take(\.bufferSize); take(\.buffers)
        take(\.sqpoll); take(\.zerocopy); take(\.connectTimeout); take(\.retries); take(\.idleTimeout)
        take(\.maxConnections); take(\.admin); take(\.adminTokenFile); take(\.drainTimeout); take(\.reportInterval)
        take(\.logLevel); take(\.logFormat); take(\.accessLog)
        take(\.resolvers); take(\.dnsMinTTL); take(\.dnsMaxTTL); take(\.dnsHold); take(\.dnsStart)
        merged.routing = other.routing.inheriting(routing)
        merged.health = health.overridden(by: other.health)
        merged.problems = problems + other.problems
        if other.listen != nil {
            merged.host = nil
            merged.port = nil
        }
        return merged
    }
}

/// One `[[listeners]]` entry: a name, an address to listen on, and its own pool.
public struct ListenerSpec: Sendable, Equatable {
    public var name: Setting<String>?
    /// `host:port`, or `host` and `port` apart.
    public var bind: Setting<String>?
    public var host: Setting<String>?
    public var port: Setting<Int>?
    public var balance: Setting<String>?
    public var sendProxy: Setting<String>?
    public var backends: [BackendSpec]?
    /// `default_pool`, `routes`, `accept_proxy`, source rules and per-client limits.
    public var routing = ListenerRoutingSpec()
    public var source: SettingSource

    public init(source: SettingSource) { self.source = source }
}

/// One backend as written: `[[backends]] host, port, weight, max_connections` or `--backend host:port@weight`;
/// a `host` that is a name follows its addresses (`resolve`), and `srv` names an SRV record set instead.
public struct BackendSpec: Sendable, Equatable {
    public var host: Setting<String>?
    public var port: Setting<Int>?
    public var weight: Setting<Int>?
    public var maxConnections: Setting<Int>?
    public var resolve: Setting<String>?
    public var srv: Setting<String>?
    public var source: SettingSource

    public init(host: Setting<String>?, port: Setting<Int>?, weight: Setting<Int>? = nil,
                maxConnections: Setting<Int>? = nil, source: SettingSource) {
        self.host = host
        self.port = port
        self.weight = weight
        self.maxConnections = maxConnections
        self.source = source
    }
}

/// `[health]`: passive (`fail_threshold`, `fail_timeout`), active (`interval`, `timeout`, `rise`, `fall`, and
/// what a check does: `type`, `send`/`send_hex`, `expect`, `expect_within`, `method`, `path`, `host`,
/// `status`, `check_port`), and `slow_start`.
public struct HealthSpec: Sendable, Equatable {
    public var failThreshold: Setting<Int>?
    public var failTimeout: Setting<Duration>?
    public var interval: Setting<Duration>?
    public var timeout: Setting<Duration>?
    public var rise: Setting<Int>?
    public var fall: Setting<Int>?
    public var type: Setting<String>?
    public var send: Setting<String>?
    public var sendHex: Setting<String>?
    public var expect: Setting<String>?
    public var expectWithin: Setting<Int>?
    public var method: Setting<String>?
    public var path: Setting<String>?
    public var host: Setting<String>?
    public var status: Setting<[Int]>?
    public var checkPort: Setting<Int>?
    public var slowStart: Setting<Duration>?

    public init() {}

    /// Each key `other` sets replaces this one's.
    func overridden(by other: HealthSpec) -> HealthSpec {
        var merged = self
        func take<Value>(_ path: WritableKeyPath<HealthSpec, Setting<Value>?>) {
            if let value = other[keyPath: path] { merged[keyPath: path] = value }
        }
        take(\.failThreshold); take(\.failTimeout); take(\.interval); take(\.timeout); take(\.rise); take(\.fall)
        take(\.type); take(\.send); take(\.sendHex); take(\.expect); take(\.expectWithin); take(\.method)
        take(\.path); take(\.host); take(\.status); take(\.checkPort); take(\.slowStart)
        return merged
    }
}

/// One value and where it came from, so an error can name the key (and line) the operator wrote.
public struct Setting<Value: Sendable & Equatable>: Sendable, Equatable {
    public var value: Value
    public var source: SettingSource

    public init(_ value: Value, _ source: SettingSource) {
        self.value = value
        self.source = source
    }
}

/// Where a setting was written: a key in a file (with its line when known) or a command-line flag.
public struct SettingSource: Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var line: Int?

    public init(key: String, line: Int? = nil) {
        self.key = key
        self.line = line
    }

    public var description: String { line.map { "line \($0): \(key)" } ?? key }
}
