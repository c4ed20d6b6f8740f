import Glibc
import TOMLKit

/// Reads settings from a TOML file. The flat layout (`host`, `port`, `[[backends]] host, port, weight`) is
/// the core of it; `[[listeners]]` (each with `[[listeners.backends]]`) declares several pools, `[health]`
/// the health checks, and every other key is a knob with the same name as its flag (`ring_size` for
/// `--ring-size`). Unknown keys and wrong types are errors, each reported with its key and line.
public enum ConfigFile {
    public static func read(path: String) throws(ConfigError) -> ProxySettings {
        guard let text = readText(path: path) else {
            let reason = String(cString: strerror(errno))
            throw ConfigError(file: path, issues: [ConfigIssue(SettingSource(key: "file"), "cannot read '\(path)': \(reason)")])
        }
        return try parse(text, file: path)
    }

    /// The settings of `text`. Only a syntax error throws: a bad value is kept in `settings.problems`, so
    /// validation can report it together with every other error.
    public static func parse(_ text: String, file: String? = nil) throws(ConfigError) -> ProxySettings {
        if let line = headerThatAbortsTheParser(text) {
            let issue = ConfigIssue(SettingSource(key: "syntax", line: line), "invalid TOML: a table header's name must start with a letter, digit, '_', '-' or a quote")
            throw ConfigError(file: file, issues: [issue])
        }
        if let (line, message) = valueThatAbortsTheParser(text) {
            throw ConfigError(file: file, issues: [ConfigIssue(SettingSource(key: "syntax", line: line), "invalid TOML: \(message)")])
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let issue = ConfigIssue(SettingSource(key: "syntax", line: error.source.begin.line), "invalid TOML: \(error.description)")
            throw ConfigError(file: file, issues: [issue])
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(SettingSource(key: "syntax"), "invalid TOML: \(error)")])
        }
        var reader = Reader(lines: SourceLines(text))
        var settings = reader.settings(from: table)
        settings.problems = reader.issues
        return settings
    }

    /// The line of a table header that toml++ 3.4 (inside TOMLKit 0.6) cannot parse: when the first character
    /// after `[` or `[[` (and spaces) can start no key, its parser fails an assertion and aborts the process
    /// (`[{a]`, `[`+newline, `[[ [x]]`; found by `make fuzz`). Such a file is invalid TOML anyway; a line inside
    /// a multi-line string or array that looks like one is rejected too, which no valid config needs.
    static func headerThatAbortsTheParser(_ text: String) -> Int? {
        // Split on scalars: as Characters, "\r\n" is one and would not split on "\n".
        for (offset, line) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var rest = line.drop(while: isTOMLSpace)
            guard rest.first == "[" else { continue }
            rest = rest.dropFirst().drop(while: isTOMLSpace)
            if rest.first == "[" { rest = rest.dropFirst().drop(while: isTOMLSpace) }
            guard let first = rest.first else { return offset + 1 }
            let startsAKey = ("a"..."z").contains(first) || ("A"..."Z").contains(first) || ("0"..."9").contains(first)
                || ["_", "-", "\"", "'", "]"].contains(first)
            if !startsAKey { return offset + 1 }
        }
        return nil
    }

    /// The line (and what is wrong) of a value toml++ 3.4 fails an assertion on and aborts the process, both
    /// found by `make fuzz`, both invalid TOML everywhere (strings and comments are skipped):
    /// - a `}` right after `[` or `,`, comments and whitespace aside (`[0,}1]`, `[}`);
    /// - a date followed by `T` and no digit (`1979-05-27Ta0:00:00`).
    static func valueThatAbortsTheParser(_ text: String) -> (Int, String)? {
        let scalars = Array(text.unicodeScalars)
        var line = 1
        var previous: Unicode.Scalar = "\n"
        var index = 0
        func starts(_ quote: String, at position: Int) -> Bool {
            let q = Array(quote.unicodeScalars)
            return position + q.count <= scalars.count && Array(scalars[position..<position + q.count]) == q
        }
        func isDigit(_ position: Int) -> Bool { position < scalars.count && ("0"..."9").contains(scalars[position]) }
        /// `YYYY-MM-DD` then `T` or `t` and no digit, the date not part of a longer bare word.
        func dateWithoutTime(at start: Int) -> Bool {
            if start > 0, ("a"..."z").contains(scalars[start - 1]) || ("A"..."Z").contains(scalars[start - 1])
                || ("0"..."9").contains(scalars[start - 1]) || scalars[start - 1] == "_" || scalars[start - 1] == "-" { return false }
            let shape = Array("dddd-dd-ddT".unicodeScalars)
            guard start + shape.count <= scalars.count else { return false }
            for (offset, expected) in shape.enumerated() {
                let actual = scalars[start + offset]
                switch expected {
                case "d": if !isDigit(start + offset) { return false }
                case "T": if actual != "T" && actual != "t" { return false }
                default: if actual != expected { return false }
                }
            }
            return !isDigit(start + shape.count)
        }
        while index < scalars.count {
            let scalar = scalars[index]
            switch scalar {
            case "\n":
                line += 1
                index += 1
            case "#":
                while index < scalars.count, scalars[index] != "\n" { index += 1 }
            case "\"", "'":
                let fence = starts(String(repeating: String(scalar), count: 3), at: index) ? 3 : 1
                let escapes = scalar == "\""
                index += fence
                while index < scalars.count {
                    if escapes, scalars[index] == "\\" { index += 2; continue }
                    if fence == 1, scalars[index] == "\n" { break }
                    if scalars[index] == "\n" { line += 1 }
                    if scalars[index] == scalar, fence == 1 || starts(String(repeating: String(scalar), count: 3), at: index) {
                        index += fence
                        break
                    }
                    index += 1
                }
                previous = scalar
            case "}":
                if previous == "[" || previous == "," { return (line, "'}' where a value was expected") }
                previous = scalar
                index += 1
            case "0"..."9" where dateWithoutTime(at: index):
                return (line, "a date and 'T' must be followed by a time")
            default:
                if !isTOMLSpace(scalar), scalar != "\r" { previous = scalar }
                index += 1
            }
        }
        return nil
    }

    /// toml++'s horizontal whitespace.
    private static func isTOMLSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x20, 0xA0, 0x1680, 0x180E, 0x2000...0x200B, 0x202F, 0x205F...0x2060, 0x3000, 0xFEFF: true
        default: false
        }
    }

    private static func readText(path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count {
                if ferror(file) != 0 { return nil }
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The keys a file may set at its top level.
    static let topLevelKeys = Set<String>([
        "host", "port", "backends", "listeners", "pools", "balance", "send_proxy", "health",
        "threads", "pin", "cpus", "ring_size", "buffer_size", "buffers", "sqpoll", "zerocopy",
        "connect_timeout", "retries", "idle_timeout", "max_connections",
        "admin", "admin_token_file", "drain_timeout", "report_interval", "log_level", "log_format", "access_log",
        "resolvers", "dns_min_ttl", "dns_max_ttl", "dns_hold", "dns_start",
    ]).union(sharedRoutingKeys)

    /// Listener keys that the top level may set too, for the flat listener and as every listener's default.
    static let sharedRoutingKeys: Set<String> = [
        "accept_proxy", "allow", "deny", "max_connections_per_client", "new_connections_per_client",
        "new_connections_burst", "preread_max", "preread_timeout",
    ]

    /// The keys of `[health]`.
    static let healthKeys: Set<String> = [
        "fail_threshold", "fail_timeout", "interval", "timeout", "rise", "fall", "type", "send", "send_hex", "expect",
        "expect_within", "method", "path", "host", "status", "check_port", "slow_start",
    ]

    /// Walks the parsed table, converting each known key and collecting an issue for each bad one.
    private struct Reader {
        let lines: SourceLines
        var issues: [ConfigIssue] = []
        /// `[[listeners.backends]]` entries read so far, over all listeners (how `SourceLines` counts them).
        private var nestedBackends = 0
        /// `[[listeners.routes]]` entries read so far, over all listeners.
        private var nestedRoutes = 0

        init(lines: SourceLines) { self.lines = lines }

        static let listenerKeys: Set<String> = [
            "name", "bind", "host", "port", "balance", "send_proxy", "backends",
            "default_pool", "routes", "accept_proxy", "allow", "deny", "max_connections_per_client",
            "new_connections_per_client", "new_connections_burst", "preread_max", "preread_timeout",
        ]
        static let poolKeys: Set<String> = ["balance", "backends"]
        static let routeKeys: Set<String> = ["sni", "alpn", "pool"]
        static let backendKeys: Set<String> = ["host", "port", "weight", "max_connections", "resolve", "srv"]

        mutating func settings(from table: TOMLTable) -> ProxySettings {
            var settings = ProxySettings()
            for (key, value) in table {
                let source = SettingSource(key: key, line: lines.line(of: key))
                switch key {
                case "host": settings.host = string(value, source)
                case "port": settings.port = integer(value, source)
                case "backends": settings.backends = backends(value, key: "backends", table: "backends", headerBase: 0)
                case "listeners": settings.listeners = listeners(value, source)
                case "pools": settings.pools = pools(value, source)
                case "balance": settings.balance = string(value, source)
                case "send_proxy": settings.sendProxy = string(value, source)
                case "health": settings.health = health(value, source)
                case "threads": settings.threads = integer(value, source)
                case "pin": settings.pin = boolean(value, source)
                case "cpus": settings.cpus = cpuList(value, source)
                case "ring_size": settings.ringSize = integer(value, source)
                case "buffer_size": settings.bufferSize = byteSize(value, source)
                case "buffers": settings.buffers = integer(value, source)
                case "sqpoll": settings.sqpoll = boolean(value, source)
                case "zerocopy": settings.zerocopy = switchSetting(value, source)
                case "connect_timeout": settings.connectTimeout = duration(value, source)
                case "retries": settings.retries = integer(value, source)
                case "idle_timeout": settings.idleTimeout = duration(value, source)
                case "max_connections": settings.maxConnections = integer(value, source)
                case "admin": settings.admin = address(value, source)
                case "admin_token_file": settings.adminTokenFile = string(value, source)
                case "drain_timeout": settings.drainTimeout = duration(value, source)
                case "report_interval": settings.reportInterval = duration(value, source)
                case "log_level": settings.logLevel = string(value, source)
                case "log_format": settings.logFormat = string(value, source)
                case "access_log": settings.accessLog = boolean(value, source)
                case "resolvers": settings.resolvers = strings(value, source)
                case "dns_min_ttl": settings.dnsMinTTL = duration(value, source)
                case "dns_max_ttl": settings.dnsMaxTTL = duration(value, source)
                case "dns_hold": settings.dnsHold = duration(value, source)
                case "dns_start": settings.dnsStart = string(value, source)
                case "routes", "default_pool":
                    issues.append(ConfigIssue(source, "\(key) belongs to a [[listeners]] entry, whose routes name [pools.NAME]: "
                        + "the flat layout has one pool (README, Routing)"))
                default:
                    if !routingKey(key, value, source, into: &settings.routing) { unknown(key, source, known: ConfigFile.topLevelKeys) }
                }
            }
            return settings
        }

        mutating func listeners(_ value: TOMLValueConvertible, _ source: SettingSource) -> [ListenerSpec]? {
            guard let array = value.array else { return mismatch(value, source, expected: "an array of tables ([[listeners]])") }
            var specs: [ListenerSpec] = []
            for (index, element) in array.enumerated() {
                let name = "listeners[\(index)]"
                var spec = ListenerSpec(source: SettingSource(key: name, line: lines.header("listeners", index: index)))
                guard let entry = element.table else {
                    issues.append(ConfigIssue(spec.source, "expected a table with name, bind and [[listeners.backends]], got \(describe(element))"))
                    continue
                }
                for (key, field) in entry {
                    let fieldSource = SettingSource(key: "\(name).\(key)", line: lines.line(of: key, in: "listeners", index: index))
                    switch key {
                    case "name": spec.name = string(field, fieldSource)
                    case "bind": spec.bind = string(field, fieldSource)
                    case "host": spec.host = string(field, fieldSource)
                    case "port": spec.port = integer(field, fieldSource)
                    case "balance": spec.balance = string(field, fieldSource)
                    case "send_proxy": spec.sendProxy = string(field, fieldSource)
                    case "backends":
                        let base = nestedBackends
                        spec.backends = backends(field, key: "\(name).backends", table: "listeners.backends", headerBase: base)
                        nestedBackends += field.array?.count ?? 0
                    case "default_pool": spec.routing.defaultPool = string(field, fieldSource)
                    case "routes":
                        spec.routing.routes = routes(field, key: "\(name).routes", index: index)
                    default:
                        if !routingKey(key, field, fieldSource, into: &spec.routing) { unknown(key, fieldSource, known: Self.listenerKeys) }
                    }
                }
                specs.append(spec)
            }
            return specs
        }

        /// One of `ConfigFile.sharedRoutingKeys`, read into `spec`; false when `key` is none of them.
        mutating func routingKey(_ key: String, _ value: TOMLValueConvertible, _ source: SettingSource,
                                 into spec: inout ListenerRoutingSpec) -> Bool {
            switch key {
            case "accept_proxy": spec.acceptProxy = stringList(value, source)
            case "allow": spec.allow = stringList(value, source)
            case "deny": spec.deny = stringList(value, source)
            case "max_connections_per_client": spec.maxConnectionsPerClient = integer(value, source)
            case "new_connections_per_client": spec.newConnectionsPerClient = integer(value, source)
            case "new_connections_burst": spec.newConnectionsBurst = integer(value, source)
            case "preread_max": spec.prereadMax = byteSize(value, source)
            case "preread_timeout": spec.prereadTimeout = duration(value, source)
            default: return false
            }
            return true
        }

        /// `[[backends]]` (or `[[listeners.backends]]`, whose entries `SourceLines` numbers over the whole
        /// file, from `headerBase` for this listener).
        mutating func backends(_ value: TOMLValueConvertible, key: String, table: String, headerBase: Int) -> [BackendSpec]? {
            let source = SettingSource(key: key, line: lines.header(table, index: headerBase))
            guard let array = value.array else { return mismatch(value, source, expected: "an array of tables ([[\(table)]])") }
            var specs: [BackendSpec] = []
            for (index, element) in array.enumerated() {
                let entrySource = SettingSource(key: "\(key)[\(index)]", line: lines.header(table, index: headerBase + index))
                guard let entry = element.table else {
                    issues.append(ConfigIssue(entrySource, "expected a table with host, port and weight (or srv), got \(describe(element))"))
                    continue
                }
                var spec = BackendSpec(host: nil, port: nil, source: entrySource)
                for (field, fieldValue) in entry {
                    let fieldSource = SettingSource(key: "\(entrySource.key).\(field)", line: lines.line(of: field, in: table, index: headerBase + index))
                    switch field {
                    case "host": spec.host = string(fieldValue, fieldSource)
                    case "port": spec.port = integer(fieldValue, fieldSource)
                    case "weight": spec.weight = integer(fieldValue, fieldSource)
                    case "max_connections": spec.maxConnections = integer(fieldValue, fieldSource)
                    case "resolve": spec.resolve = string(fieldValue, fieldSource)
                    case "srv": spec.srv = string(fieldValue, fieldSource)
                    default: unknown(field, fieldSource, known: Self.backendKeys)
                    }
                }
                specs.append(spec)
            }
            return specs
        }

        /// `[pools.NAME]` tables, each with `balance` and `backends` (`[[pools.NAME.backends]]` or an inline array).
        mutating func pools(_ value: TOMLValueConvertible, _ source: SettingSource) -> [PoolSpec]? {
            guard let table = value.table else { return mismatch(value, source, expected: "a table of pools ([pools.NAME])") }
            var specs: [PoolSpec] = []
            for (name, element) in table {
                let header = "pools.\(name)"
                var spec = PoolSpec(name: name, source: SettingSource(key: header, line: lines.header(header)))
                guard let entry = element.table else {
                    issues.append(ConfigIssue(spec.source, "expected a table with balance and backends, got \(describe(element))"))
                    continue
                }
                for (key, field) in entry {
                    let fieldSource = SettingSource(key: "\(header).\(key)", line: lines.line(of: key, in: header))
                    switch key {
                    case "balance": spec.balance = string(field, fieldSource)
                    case "backends":
                        spec.backends = backends(field, key: "\(header).backends", table: "\(header).backends", headerBase: 0)
                    default: unknown(key, fieldSource, known: Self.poolKeys)
                    }
                }
                specs.append(spec)
            }
            return specs.sorted { $0.name < $1.name }
        }

        /// A listener's `routes`: `[[listeners.routes]]` (numbered over the whole file by `SourceLines`) or an
        /// inline array of tables.
        mutating func routes(_ value: TOMLValueConvertible, key: String, index listener: Int) -> [RouteSpec]? {
            let keyLine = lines.line(of: "routes", in: "listeners", index: listener)
            guard let array = value.array else {
                return mismatch(value, SettingSource(key: key, line: keyLine), expected: "an array of tables ([[listeners.routes]])")
            }
            let base = nestedRoutes
            if keyLine == nil { nestedRoutes += array.count }
            var specs: [RouteSpec] = []
            for (index, element) in array.enumerated() {
                let headerLine = keyLine == nil ? lines.header("listeners.routes", index: base + index) : keyLine
                var spec = RouteSpec(source: SettingSource(key: "\(key)[\(index)]", line: headerLine))
                guard let entry = element.table else {
                    issues.append(ConfigIssue(spec.source, "expected a table with sni, alpn and pool, got \(describe(element))"))
                    continue
                }
                for (field, fieldValue) in entry {
                    let line = keyLine ?? lines.line(of: field, in: "listeners.routes", index: base + index)
                    let fieldSource = SettingSource(key: "\(spec.source.key).\(field)", line: line)
                    switch field {
                    case "sni": spec.sni = stringList(fieldValue, fieldSource)
                    case "alpn": spec.alpn = stringList(fieldValue, fieldSource)
                    case "pool": spec.pool = string(fieldValue, fieldSource)
                    default: unknown(field, fieldSource, known: Self.routeKeys)
                    }
                }
                specs.append(spec)
            }
            return specs
        }

        /// An array of strings, or one string alone.
        mutating func stringList(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<[String]>? {
            if let text = value.string { return Setting([text], source) }
            guard let array = value.array, array.allSatisfy({ $0.type == .string }) else {
                return mismatch(value, source, expected: "an array of strings")
            }
            return Setting(array.compactMap(\.string), source)
        }

        mutating func health(_ value: TOMLValueConvertible, _ source: SettingSource) -> HealthSpec {
            var spec = HealthSpec()
            guard let table = value.table else {
                issues.append(ConfigIssue(source, "expected a table ([health]), got \(describe(value))"))
                return spec
            }
            for (key, field) in table {
                let fieldSource = SettingSource(key: "health.\(key)", line: lines.line(of: key, in: "health"))
                switch key {
                case "fail_threshold": spec.failThreshold = integer(field, fieldSource)
                case "fail_timeout": spec.failTimeout = duration(field, fieldSource)
                case "interval": spec.interval = duration(field, fieldSource)
                case "timeout": spec.timeout = duration(field, fieldSource)
                case "rise": spec.rise = integer(field, fieldSource)
                case "fall": spec.fall = integer(field, fieldSource)
                case "type": spec.type = string(field, fieldSource)
                case "send": spec.send = string(field, fieldSource)
                case "send_hex": spec.sendHex = string(field, fieldSource)
                case "expect": spec.expect = string(field, fieldSource)
                case "expect_within": spec.expectWithin = byteSize(field, fieldSource)
                case "method": spec.method = string(field, fieldSource)
                case "path": spec.path = string(field, fieldSource)
                case "host": spec.host = string(field, fieldSource)
                case "status": spec.status = integerList(field, fieldSource)
                case "check_port": spec.checkPort = integer(field, fieldSource)
                case "slow_start": spec.slowStart = duration(field, fieldSource)
                default: unknown(key, fieldSource, known: ConfigFile.healthKeys)
                }
            }
            return spec
        }

        mutating func string(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<String>? {
            guard let text = value.string else { return mismatch(value, source, expected: "a string") }
            return Setting(text, source)
        }

        /// An array of strings (`resolvers = ["127.0.0.1:53"]`).
        mutating func strings(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<[String]>? {
            guard let array = value.array, array.allSatisfy({ $0.type == .string }) else {
                return mismatch(value, source, expected: "an array of strings")
            }
            return Setting(array.compactMap(\.string), source)
        }

        mutating func integer(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<Int>? {
            guard value.type == .int, let number = value.int else { return mismatch(value, source, expected: "an integer") }
            return Setting(number, source)
        }

        /// An integer, or an array of integers (`status = [200, 204]`).
        mutating func integerList(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<[Int]>? {
            if value.type == .int, let number = value.int { return Setting([number], source) }
            guard let array = value.array, array.allSatisfy({ $0.type == .int }) else {
                return mismatch(value, source, expected: "an integer or an array of integers")
            }
            return Setting(array.compactMap(\.int), source)
        }

        mutating func boolean(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<Bool>? {
            guard let flag = value.bool else { return mismatch(value, source, expected: "true or false") }
            return Setting(flag, source)
        }

        /// "on", "off", "auto", or a boolean (true is "on").
        mutating func switchSetting(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<String>? {
            if let flag = value.bool { return Setting(flag ? "on" : "off", source) }
            return string(value, source)
        }

        /// "host:port", or a port number alone.
        mutating func address(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<String>? {
            if value.type == .int, let port = value.int { return Setting(String(port), source) }
            return string(value, source)
        }

        /// A number of seconds, or a string with a unit: "250ms", "3s", "2m", "1h".
        mutating func duration(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<Duration>? {
            let parsed: Duration?
            switch value.type {
            case .int: parsed = value.int.flatMap { Units.seconds(Double($0)) }
            case .double: parsed = value.double.flatMap(Units.seconds)
            case .string: parsed = value.string.flatMap(Units.duration)
            default: return mismatch(value, source, expected: "a duration (seconds, or a string like \"250ms\", \"3s\", \"1h\")")
            }
            guard let duration = parsed else {
                issues.append(ConfigIssue(source, "expected a duration like 3, \"250ms\", \"3s\" or \"1h\", got \(describe(value))"))
                return nil
            }
            return Setting(duration, source)
        }

        /// A number of bytes, or a string with a unit: "16KiB", "1MiB".
        mutating func byteSize(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<Int>? {
            switch value.type {
            case .int: return integer(value, source)
            case .string:
                guard let bytes = value.string.flatMap(Units.byteSize) else {
                    issues.append(ConfigIssue(source, "expected a size like 16384 or \"16KiB\", got \(describe(value))"))
                    return nil
                }
                return Setting(bytes, source)
            default: return mismatch(value, source, expected: "a size in bytes (16384 or \"16KiB\")")
            }
        }

        /// "0,2-3" or [0, 2, 3], kept in the string form the flag takes.
        mutating func cpuList(_ value: TOMLValueConvertible, _ source: SettingSource) -> Setting<String>? {
            if let text = value.string { return Setting(text, source) }
            guard let array = value.array, array.allSatisfy({ $0.type == .int }) else {
                return mismatch(value, source, expected: "a CPU list (\"0,2-3\" or [0, 2, 3])")
            }
            return Setting(array.compactMap { $0.int.map(String.init) }.joined(separator: ","), source)
        }

        mutating func mismatch<T>(_ value: TOMLValueConvertible, _ source: SettingSource, expected: String) -> T? {
            issues.append(ConfigIssue(source, "expected \(expected), got \(describe(value))"))
            return nil
        }

        mutating func unknown(_ key: String, _ source: SettingSource, known: Set<String>) {
            let suggestion = known.min { editDistance($0, key) < editDistance($1, key) }
                .flatMap { editDistance($0, key) <= 2 ? " (did you mean '\($0)'?)" : nil } ?? ""
            issues.append(ConfigIssue(source, "unknown key\(suggestion)"))
        }

        func describe(_ value: TOMLValueConvertible) -> String {
            switch value.type {
            case .string: "a string (\"\(value.string ?? "")\")"
            case .int: "an integer (\(value.int ?? 0))"
            case .double: "a number (\(value.double ?? 0))"
            case .bool: "a boolean (\(value.bool ?? false))"
            case .array: "an array"
            case .table: "a table"
            default: "a date or time"
            }
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on unknown keys and flags.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
