import Logging

/// The validated, immutable configuration the proxy runs with. Built only by `validate`, which either
/// accepts every setting or reports every problem: a configuration is never applied in part.
public struct ProxyConfig: Sendable, Equatable {
    public struct Backend: Sendable, Equatable {
        /// As the operator wrote it (`db1.internal:5432`), for logs and metrics.
        public var name: String
        public var address: SocketAddress
        public var weight: Int
        /// Open connections at most; 0 for no limit.
        public var maxConnections: Int
        /// The DNS query it was discovered by; nil: the address was written in the file.
        public var origin: DNSQuery? = nil
    }

    public struct Listener: Sendable, Equatable {
        public var name: String
        public var address: SocketAddress
        public var balance: BalanceAlgorithm
        public var sendProxy: ProxyProtocolVersion?
        /// The listener's own pool, or its `default_pool` (empty when routes have no default): its file backends,
        /// and the addresses its names resolve to now (with their `origin`).
        public var backends: [Backend]
        /// The backend entries of that pool that name a DNS name, followed by discovery.
        public var names: [NamedBackend] = []
        /// The `default_pool` whose backends `backends` are; nil: the listener's own.
        public var defaultPool: String? = nil
        /// The routing stage's settings; nil: the plain path.
        public var routing: ListenerRouting? = nil

        /// The backend table's key for the rows of `backends`.
        public var rowKey: String { defaultPool.map { "pools.\($0)" } ?? name }
    }

    public var listeners: [Listener]
    public var threads: Int
    public var pin: Bool
    /// The CPU each worker is pinned to (when `pin`): the `cpus` list, or the allowed CPUs, in turn.
    public var workerCPUs: [Int]
    public var ringSize: Int
    public var bufferSize: Int
    public var buffersPerWorker: Int
    public var sqpoll: Bool
    public var zerocopy: ZeroCopyMode
    public var connectTimeout: Duration
    public var retries: Int
    /// nil: idle connections are never closed.
    public var idleTimeout: Duration?
    public var maxConnections: Int
    public var health: HealthPolicy
    /// Where the admin endpoint (metrics, health, backends) listens; nil when it is off.
    public var admin: SocketAddress?
    /// The bearer token the admin endpoint requires (`admin_token_file`), and the file it came from; nil: none.
    public var adminToken: AdminToken?
    public var drainTimeout: Duration
    /// nil: no periodic summary line.
    public var reportInterval: Duration?
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    public var accessLog: Bool
    /// DNS servers ("host:port") for backend names; nil: /etc/resolv.conf's.
    public var resolvers: [String]?
    /// The bounds on how long a DNS answer is kept before the name is resolved again.
    public var dnsMinTTL: Duration
    public var dnsMaxTTL: Duration
    /// How long a name that no longer resolves (NXDOMAIN, no records) keeps its last addresses.
    public var dnsHold: Duration
    public var dnsStart: DNSStart

    /// Bytes of receive buffers each worker maps (touched only as traffic needs them).
    public var bufferBytesPerWorker: Int { bufferSize * buffersPerWorker }

    /// The connections each worker admits: `maxConnections` shared out, rounded up.

    public enum Limits {
        public static let ringSize = 2...32768
        public static let bufferSize = 1024...(1 << 20)
        public static let buffers = 2...32768
        public static let threads = 1...1024
        public static let retries = 0...8
        public static let weight = 0...256
        public static let maxConnections = 1...10_000_000
        public static let backendMaxConnections = 0...10_000_000
        public static let backends = 1...4096
        public static let failThreshold = 0...1000
        public static let riseFall = 1...100
    }

    public static let defaultRingSize = 4096
    public static let defaultBufferSize = 16 * 1024
    public static let defaultBuffers = 1024
    public static let defaultConnectTimeout = Duration.seconds(3)
    public static let defaultRetries = 2
    public static let defaultIdleTimeout = Duration.seconds(3600)
    public static let defaultMaxConnections = 100_000
    public static let defaultWeight = 1
    public static let defaultDrainTimeout = Duration.seconds(30)
    public static let defaultAdminPort: UInt16 = 9901
    public static let defaultCheckRise = 2
    public static let defaultCheckFall = 3
    public static let defaultCheckTimeout = Duration.seconds(2)
    public static let defaultDNSMinTTL = Duration.seconds(1)
    public static let defaultDNSMaxTTL = Duration.seconds(300)
    public static let defaultDNSHold = Duration.seconds(30)

    /// Checks and resolves `settings`. `allowedCPUs` is where workers may run (the default thread count).
    public static func validate(_ settings: ProxySettings, file: String? = nil, allowedCPUs: [Int] = SystemInfo.allowedCPUs()) throws(ConfigError) -> ProxyConfig {
        var check = ConfigValidation(issues: settings.problems)
        var listeners = check.listeners(settings)
        let issuesBefore = check.issues.count
        let resolvers = settings.resolvers.flatMap { check.resolvers($0) }
        let resolversAreBad = check.issues.count > issuesBefore
        let dnsMinTTL = check.positive(settings.dnsMinTTL) ?? defaultDNSMinTTL
        let dnsMaxTTL = check.positive(settings.dnsMaxTTL) ?? max(defaultDNSMaxTTL, dnsMinTTL)
        if dnsMaxTTL < dnsMinTTL, let source = settings.dnsMaxTTL?.source ?? settings.dnsMinTTL?.source {
            check.fail(source, "dns_max_ttl (\(Units.text(dnsMaxTTL))) is below dns_min_ttl (\(Units.text(dnsMinTTL)))")
        }
        let dnsStart = check.choice(settings.dnsStart, DNSStart.self) ?? .fail
        // Names are resolved even when other settings are bad, so that every error is reported at once; not
        // through resolvers in error (the system's would answer instead).
        if !resolversAreBad { check.resolveNames(&listeners, resolvers: resolvers, start: dnsStart) }
        let threads = check.range(settings.threads, Limits.threads, what: "a thread count") ?? max(1, allowedCPUs.count)
        let cpuList = settings.cpus.flatMap { check.cpus($0, allowed: allowedCPUs) }
        let admin = settings.admin.flatMap { check.adminAddress($0) }
        let adminToken = check.adminToken(settings.adminTokenFile, protecting: admin, addressSetting: settings.admin)
        let config = ProxyConfig(
            listeners: listeners,
            threads: threads,
            // Pinned only when asked, or when given CPUs of its own: a pinned worker cannot leave a CPU that
            // other work on a shared host is using, and waits there instead.
            pin: settings.pin?.value ?? (settings.cpus != nil),
            workerCPUs: (0..<threads).map { index in
                let cpus = cpuList ?? allowedCPUs
                return cpus.isEmpty ? index : cpus[index % cpus.count]
            },
            ringSize: check.powerOfTwo(settings.ringSize, Limits.ringSize) ?? defaultRingSize,
            bufferSize: check.range(settings.bufferSize, Limits.bufferSize, what: "a buffer size in bytes") ?? defaultBufferSize,
            buffersPerWorker: check.powerOfTwo(settings.buffers, Limits.buffers) ?? defaultBuffers,
            sqpoll: settings.sqpoll?.value ?? false,
            zerocopy: check.choice(settings.zerocopy, ZeroCopyMode.self) ?? .off,
            connectTimeout: check.positive(settings.connectTimeout) ?? defaultConnectTimeout,
            retries: check.range(settings.retries, Limits.retries, what: "a retry count") ?? defaultRetries,
            idleTimeout: settings.idleTimeout.map { $0.value == .zero ? nil : $0.value } ?? defaultIdleTimeout,
            maxConnections: check.range(settings.maxConnections, Limits.maxConnections, what: "a connection limit") ?? defaultMaxConnections,
            health: check.health(settings.health),
            admin: admin,
            adminToken: adminToken,
            drainTimeout: settings.drainTimeout?.value ?? defaultDrainTimeout,
            reportInterval: settings.reportInterval.flatMap { $0.value == .zero ? nil : $0.value },
            logLevel: check.logLevel(settings.logLevel) ?? .info,
            logFormat: check.choice(settings.logFormat, LogFormat.self) ?? .text,
            accessLog: settings.accessLog?.value ?? false,
            resolvers: resolvers,
            dnsMinTTL: dnsMinTTL,
            dnsMaxTTL: dnsMaxTTL,
            dnsHold: check.positive(settings.dnsHold) ?? defaultDNSHold,
            dnsStart: dnsStart
        )
        guard check.issues.isEmpty else { throw ConfigError(file: file, issues: check.issues) }
        return config
    }
}
