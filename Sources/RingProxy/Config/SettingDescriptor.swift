/// One knob of the configuration, by the key the file gives it (its flag is the same with dashes:
/// `ring_size`, `--ring-size`): how its value reads as text, and whether a reload may change it.
/// `ProxyConfig.settings` lists them; the reload's restart-only warnings, its log line and `--check`'s
/// summary are all made from that one table.
public struct SettingDescriptor: Sendable {
    /// The key in the configuration file.
    public let name: String
    /// false: the workers are sized or started with it, so a reload keeps the running value and says so.
    public let reloadable: Bool
    private let read: @Sendable (ProxyConfig) -> String
    private let copy: @Sendable (_ from: ProxyConfig, _ into: inout ProxyConfig) -> Void

    init<Value>(_ name: String, _ path: WritableKeyPath<ProxyConfig, Value> & Sendable, reloadable: Bool,
                _ format: @escaping @Sendable (Value) -> String = { "\($0)" }) {
        self.name = name
        self.reloadable = reloadable
        read = { config in format(config[keyPath: path]) }
        copy = { from, into in into[keyPath: path] = from[keyPath: path] }
    }

    /// The value in `config`, as `--check` and the logs show it.
    public func value(in config: ProxyConfig) -> String { read(config) }

    /// Sets this setting of `config` to its value in `running`.
    public func keep(_ running: ProxyConfig, in config: inout ProxyConfig) { copy(running, &config) }
}

extension ProxyConfig {
    /// Every top-level setting but the listeners, their backends and `[health]`, in the order of the file's keys.
    public static let settings: [SettingDescriptor] = [
        .init("threads", \.threads, reloadable: false),
        .init("pin", \.pin, reloadable: false),
        .init("cpus", \.workerCPUs, reloadable: false) { $0.map(String.init).joined(separator: ",") },
        .init("ring_size", \.ringSize, reloadable: false),
        .init("buffer_size", \.bufferSize, reloadable: false),
        .init("buffers", \.buffersPerWorker, reloadable: false),
        .init("sqpoll", \.sqpoll, reloadable: false),
        // Each worker reads it once, when it starts.
        .init("zerocopy", \.zerocopy, reloadable: false) { $0.rawValue },
        .init("connect_timeout", \.connectTimeout, reloadable: true) { Units.text($0) },
        .init("retries", \.retries, reloadable: true),
        .init("idle_timeout", \.idleTimeout, reloadable: true) { $0.map { Units.text($0) } ?? "off" },
        .init("max_connections", \.maxConnections, reloadable: false),
        .init("admin", \.admin, reloadable: false) { $0.map { "\($0)" } ?? "off" },
        .init("admin_token_file", \.adminToken, reloadable: false) { $0?.file ?? "none" },
        .init("drain_timeout", \.drainTimeout, reloadable: true) { Units.text($0) },
        .init("report_interval", \.reportInterval, reloadable: true) { $0.map { Units.text($0) } ?? "off" },
        .init("log_level", \.logLevel, reloadable: false) { $0.rawValue },
        .init("log_format", \.logFormat, reloadable: false) { $0.rawValue },
        .init("access_log", \.accessLog, reloadable: true),
        // Discovery reads them at each change: a reload applies them to the next lookups.
        .init("resolvers", \.resolvers, reloadable: true) { $0?.joined(separator: ",") ?? "/etc/resolv.conf" },
        .init("dns_min_ttl", \.dnsMinTTL, reloadable: true) { Units.text($0) },
        .init("dns_max_ttl", \.dnsMaxTTL, reloadable: true) { Units.text($0) },
        .init("dns_hold", \.dnsHold, reloadable: true) { Units.text($0) },
        .init("dns_start", \.dnsStart, reloadable: true) { $0.rawValue },
    ]
}

/// A setting whose value a reload would change.
public struct SettingChange: Sendable, Equatable {
    public let name: String
    public let running: String
    public let requested: String
}

/// What a reload from the running configuration to a requested one does to `ProxyConfig.settings`.
public struct SettingsReload: Sendable {
    /// The requested configuration with every restart-only setting at its running value.
    public let effective: ProxyConfig
    /// Reloadable settings whose value changes.
    public let applied: [SettingChange]
    /// Restart-only settings the request changes; the running values stay.
    public let restartOnly: [SettingChange]

    public init(running: ProxyConfig, requested: ProxyConfig) {
        var effective = requested
        var applied: [SettingChange] = [], restartOnly: [SettingChange] = []
        for setting in ProxyConfig.settings {
            let old = setting.value(in: running), new = setting.value(in: requested)
            // Kept even when its text is unchanged: the token in an unchanged admin_token_file may differ.
            if !setting.reloadable { setting.keep(running, in: &effective) }
            guard old != new else { continue }
            let change = SettingChange(name: setting.name, running: old, requested: new)
            if setting.reloadable { applied.append(change) } else { restartOnly.append(change) }
        }
        self.effective = effective
        self.applied = applied
        self.restartOnly = restartOnly
    }
}
