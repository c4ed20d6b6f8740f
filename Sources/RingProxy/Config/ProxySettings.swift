/// Every setting as the operator gave it, before validation: read from a TOML file, from flags, or the two
/// merged (flags win). `ProxyConfig.validate` turns it into a checked configuration or a list of errors.
public struct ProxySettings: Sendable, Equatable {
    public var host: Setting<String>?
    public var port: Setting<Int>?
    /// `--listen` addresses (`host:port`), which replace `host`/`port` from the file.
    public var listen: [Setting<String>]?
    public var backends: [BackendSpec]?
    public var threads: Setting<Int>?
    public var pin: Setting<Bool>?
    public var cpus: Setting<String>?
    public var ringSize: Setting<Int>?
    public var bufferSize: Setting<Int>?
    public var buffers: Setting<Int>?
    public var connectTimeout: Setting<Duration>?
    public var retries: Setting<Int>?
    public var idleTimeout: Setting<Duration>?
    public var maxConnections: Setting<Int>?
    public var logLevel: Setting<String>?
    public var sqpoll: Setting<Bool>?
    /// Values that could not be read (a wrong type, an unknown key); validation reports them with the rest.
    public var problems: [ConfigIssue] = []

    public init() {}

    /// These settings with every value that `other` sets taking precedence.
    public func overridden(by other: ProxySettings) -> ProxySettings {
        var merged = self
        merged.host = other.host ?? host
        merged.port = other.port ?? port
        merged.listen = other.listen ?? listen
        merged.backends = other.backends ?? backends
        merged.threads = other.threads ?? threads
        merged.pin = other.pin ?? pin
        merged.cpus = other.cpus ?? cpus
        merged.ringSize = other.ringSize ?? ringSize
        merged.bufferSize = other.bufferSize ?? bufferSize
        merged.buffers = other.buffers ?? buffers
        merged.connectTimeout = other.connectTimeout ?? connectTimeout
        merged.retries = other.retries ?? retries
        merged.idleTimeout = other.idleTimeout ?? idleTimeout
        merged.maxConnections = other.maxConnections ?? maxConnections
        merged.logLevel = other.logLevel ?? logLevel
        merged.sqpoll = other.sqpoll ?? sqpoll
        merged.problems = problems + other.problems
        if other.listen != nil { merged.host = nil; merged.port = nil }
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

/// One backend as written: `[[backends]] host, port, weight` or `--backend host:port@weight`.
public struct BackendSpec: Sendable, Equatable {
    public var host: Setting<String>?
    public var port: Setting<Int>?
    public var weight: Setting<Int>?
    public var source: SettingSource

    public init(host: Setting<String>?, port: Setting<Int>?, weight: Setting<Int>?, source: SettingSource) {
        self.host = host
        self.port = port
        self.weight = weight
        self.source = source
    }
}
