import Logging

/// The validated, immutable configuration the proxy runs with. Built only by `validate`, which either
/// accepts every setting or reports every problem: a configuration is never applied in part.
public struct ProxyConfig: Sendable, Equatable {
    public struct Backend: Sendable, Equatable {
        /// As the operator wrote it (`db1.internal:5432`), for logs and metrics.
        public var name: String
        public var address: SocketAddress
        public var weight: Int
    }

    public struct Listener: Sendable, Equatable {
        public var name: String
        public var address: SocketAddress
        public var backends: [Backend]
    }

    public var listeners: [Listener]
    public var threads: Int
    public var pin: Bool
    /// The CPU each worker is pinned to (when `pin`): the `cpus` list, or the allowed CPUs, in turn.
    public var workerCPUs: [Int]
    public var ringSize: Int
    public var bufferSize: Int
    public var buffersPerWorker: Int
    public var connectTimeout: Duration
    public var retries: Int
    /// nil: idle connections are never closed.
    public var idleTimeout: Duration?
    public var maxConnections: Int
    public var logLevel: Logger.Level
    public var sqpoll: Bool

    /// Bytes of receive buffers each worker maps (touched only as traffic needs them).
    public var bufferBytesPerWorker: Int { bufferSize * buffersPerWorker }

    /// The connections each worker admits: `maxConnections` shared out, rounded up.
    public var connectionsPerWorker: Int { (maxConnections + threads - 1) / threads }

    public enum Limits {
        public static let ringSize = 2...32768
        public static let bufferSize = 1024...(1 << 20)
        public static let buffers = 2...32768
        public static let threads = 1...1024
        public static let retries = 0...8
        public static let weight = 0...256
        public static let maxConnections = 1...10_000_000
        public static let backends = 1...4096
    }

    public static let defaultRingSize = 4096
    public static let defaultBufferSize = 16 * 1024
    public static let defaultBuffers = 1024
    public static let defaultConnectTimeout = Duration.seconds(3)
    public static let defaultRetries = 2
    public static let defaultIdleTimeout = Duration.seconds(3600)
    public static let defaultMaxConnections = 100_000
    public static let defaultWeight = 1

    /// Checks and resolves `settings`. `allowedCPUs` is where workers may run (the default thread count).
    public static func validate(_ settings: ProxySettings, file: String? = nil, allowedCPUs: [Int] = SystemInfo.allowedCPUs()) throws(ConfigError) -> ProxyConfig {
        var check = Validation(issues: settings.problems)
        let listeners = check.listeners(settings)
        let threads = check.range(settings.threads, Limits.threads, what: "a thread count") ?? max(1, allowedCPUs.count)
        let cpuList = settings.cpus.flatMap { check.cpus($0, allowed: allowedCPUs) }
        let ringSize = check.powerOfTwo(settings.ringSize, Limits.ringSize) ?? defaultRingSize
        let bufferSize = check.range(settings.bufferSize, Limits.bufferSize, what: "a buffer size in bytes") ?? defaultBufferSize
        let buffers = check.powerOfTwo(settings.buffers, Limits.buffers) ?? defaultBuffers
        let connectTimeout = check.positive(settings.connectTimeout) ?? defaultConnectTimeout
        let retries = check.range(settings.retries, Limits.retries, what: "a retry count") ?? defaultRetries
        let idleTimeout = settings.idleTimeout.map { $0.value == .zero ? nil : $0.value } ?? defaultIdleTimeout
        let maxConnections = check.range(settings.maxConnections, Limits.maxConnections, what: "a connection limit") ?? defaultMaxConnections
        let logLevel = check.logLevel(settings.logLevel) ?? .info
        guard check.issues.isEmpty else { throw ConfigError(file: file, issues: check.issues) }

        let cpus = cpuList ?? allowedCPUs
        return ProxyConfig(
            listeners: listeners,
            threads: threads,
            pin: settings.pin?.value ?? true,
            workerCPUs: (0..<threads).map { cpus.isEmpty ? $0 : cpus[$0 % cpus.count] },
            ringSize: ringSize,
            bufferSize: bufferSize,
            buffersPerWorker: buffers,
            connectTimeout: connectTimeout,
            retries: retries,
            idleTimeout: idleTimeout,
            maxConnections: maxConnections,
            logLevel: logLevel,
            sqpoll: settings.sqpoll?.value ?? false
        )
    }
}

/// Collects every issue in one pass over the settings.
private struct Validation {
    var issues: [ConfigIssue] = []

    mutating func fail(_ source: SettingSource, _ message: String) {
        issues.append(ConfigIssue(source, message))
    }

    /// Reports a missing setting, unless it is missing because its value was already reported as bad.
    mutating func missing(_ source: SettingSource, _ message: String, key: String...) {
        guard !issues.contains(where: { issue in key.contains { issue.source.key.hasPrefix($0) } }) else { return }
        fail(source, message)
    }

    mutating func listeners(_ settings: ProxySettings) -> [ProxyConfig.Listener] {
        let addresses = listenAddresses(settings)
        let backends = backends(settings.backends)
        return addresses.enumerated().map { index, address in
            ProxyConfig.Listener(name: addresses.count == 1 ? "default" : "listener\(index)", address: address, backends: backends)
        }
    }

    mutating func listenAddresses(_ settings: ProxySettings) -> [SocketAddress] {
        if let listen = settings.listen {
            return listen.compactMap { entry in
                guard let (host, port) = SocketAddress.split(entry.value) else {
                    fail(entry.source, "expected host:port (like 127.0.0.1:8080 or [::1]:8080), got '\(entry.value)'")
                    return nil
                }
                return resolve(host.isEmpty ? "0.0.0.0" : host, port: Int(port), source: entry.source, allowPortZero: true)
            }
        }
        guard let port = settings.port else {
            missing(SettingSource(key: "port"), "no listen address: set port (and host) in the config file, or pass --listen host:port", key: "port")
            return []
        }
        guard (0...65535).contains(port.value) else {
            fail(port.source, "expected a port from 0 to 65535, got \(port.value)")
            return []
        }
        let host = settings.host ?? Setting("0.0.0.0", SettingSource(key: "host"))
        return resolve(host.value, port: port.value, source: host.source, allowPortZero: true).map { [$0] } ?? []
    }

    mutating func backends(_ specs: [BackendSpec]?) -> [ProxyConfig.Backend] {
        guard let specs, !specs.isEmpty else {
            missing(SettingSource(key: "backends"), "no backends: add [[backends]] entries with host and port, or pass --backend host:port",
                    key: "backends", "--backend")
            return []
        }
        if specs.count > ProxyConfig.Limits.backends.upperBound {
            fail(specs[0].source, "at most \(ProxyConfig.Limits.backends.upperBound) backends per pool, got \(specs.count)")
        }
        var seen: [SocketAddress: String] = [:]
        var backends: [ProxyConfig.Backend] = []
        for spec in specs {
            guard let host = spec.host else { missing(spec.source, "missing host", key: spec.source.key + ".host"); continue }
            guard let port = spec.port else { missing(spec.source, "missing port", key: spec.source.key + ".port"); continue }
            guard (1...65535).contains(port.value) else {
                fail(port.source, "expected a port from 1 to 65535, got \(port.value)")
                continue
            }
            let weight = spec.weight.map { $0.value } ?? ProxyConfig.defaultWeight
            if let source = spec.weight?.source, !ProxyConfig.Limits.weight.contains(weight) {
                fail(source, "expected a weight from 0 to \(ProxyConfig.Limits.weight.upperBound), got \(weight)")
                continue
            }
            guard let address = resolve(host.value, port: port.value, source: host.source, allowPortZero: false) else { continue }
            if let first = seen[address] {
                fail(spec.source, "duplicate backend \(address) (already listed as \(first))")
                continue
            }
            seen[address] = spec.source.key
            let name = address.family == 10 && !host.value.hasPrefix("[") && host.value.contains(":") ? "[\(host.value)]:\(port.value)" : "\(host.value):\(port.value)"
            backends.append(ProxyConfig.Backend(name: name, address: address, weight: weight))
        }
        return backends
    }

    mutating func resolve(_ host: String, port: Int, source: SettingSource, allowPortZero: Bool) -> SocketAddress? {
        guard (allowPortZero ? 0 : 1)...65535 ~= port else {
            fail(source, "expected a port from \(allowPortZero ? 0 : 1) to 65535, got \(port)")
            return nil
        }
        do {
            return try SocketAddress.resolve(host: host, port: UInt16(port))
        } catch {
            fail(source, "\(error)")
            return nil
        }
    }

    mutating func range(_ setting: Setting<Int>?, _ limits: ClosedRange<Int>, what: String) -> Int? {
        guard let setting else { return nil }
        guard limits.contains(setting.value) else {
            fail(setting.source, "expected \(what) from \(limits.lowerBound) to \(limits.upperBound), got \(setting.value)")
            return nil
        }
        return setting.value
    }

    mutating func powerOfTwo(_ setting: Setting<Int>?, _ limits: ClosedRange<Int>) -> Int? {
        guard let setting else { return nil }
        let value = setting.value
        guard limits.contains(value), value & (value - 1) == 0 else {
            fail(setting.source, "expected a power of two from \(limits.lowerBound) to \(limits.upperBound), got \(value)")
            return nil
        }
        return value
    }

    mutating func positive(_ setting: Setting<Duration>?) -> Duration? {
        guard let setting else { return nil }
        guard setting.value > .zero else {
            fail(setting.source, "expected a duration greater than zero")
            return nil
        }
        return setting.value
    }

    mutating func cpus(_ setting: Setting<String>, allowed: [Int]) -> [Int]? {
        guard let cpus = Units.cpuList(setting.value) else {
            fail(setting.source, "expected a CPU list like \"0,2-3\", got '\(setting.value)'")
            return nil
        }
        let unavailable = cpus.filter { !allowed.contains($0) }
        guard unavailable.isEmpty else {
            let list = unavailable.map(String.init).joined(separator: ",")
            fail(setting.source, "CPU \(list) is not available to this process (allowed: \(allowed.map(String.init).joined(separator: ",")))")
            return nil
        }
        return cpus
    }

    mutating func logLevel(_ setting: Setting<String>?) -> Logger.Level? {
        guard let setting else { return nil }
        guard let level = Logger.Level(rawValue: setting.value.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            fail(setting.source, "expected one of \(names), got '\(setting.value)'")
            return nil
        }
        return level
    }
}
