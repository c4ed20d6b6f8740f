import ArgumentParser
import Glibc
import Logging
import RingProxy

/// `ringproxy`: flags in, library call out. Exit status: 0 on a clean stop (or a valid `--check`), 2 for a
/// bad flag or configuration (every error listed with its key), 1 when the proxy cannot start.
@main
struct RingProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringproxy",
        abstract: "An io_uring TCP proxy and load balancer.",
        discussion: """
            Forwards every TCP connection accepted on the listen address to a backend of a weighted pool.

              ringproxy --listen 127.0.0.1:8080 --backend 127.0.0.1:9000 --backend 127.0.0.1:9001@3
              ringproxy --config ringproxy.toml
              ringproxy --config ringproxy.toml --check

            Flags override the file's settings (`--ring-size` overrides `ring_size`).
            `ringproxy ctl` talks to a running proxy's admin endpoint (see `ringproxy ctl --help`).
            """
    )

    @Option(name: .shortAndLong, help: ArgumentHelp("TOML configuration file.", valueName: "file"))
    var config: String?

    @Flag(help: "Validate the configuration, print a summary and exit (0 = valid, 2 = errors).")
    var check = false

    @Option(help: ArgumentHelp("Address to listen on, host:port (repeatable).", valueName: "host:port"))
    var listen: [String] = []

    @Option(help: ArgumentHelp("A backend, host:port with an optional @weight (repeatable); replaces the file's.", valueName: "host:port[@weight]"))
    var backend: [String] = []

    @Option(help: "Worker threads (default: the CPUs this process may use).")
    var threads: Int?

    @Flag(inversion: .prefixedNo, help: "Pin each worker to one CPU (default: on with --cpus, off otherwise).")
    var pin: Bool?

    @Option(help: ArgumentHelp("CPUs to pin workers to, in turn, like 0,2-3.", valueName: "list"))
    var cpus: String?

    @Option(help: "Entries of each worker's io_uring: a power of two up to 32768 (default 4096).")
    var ringSize: Int?

    @Option(help: ArgumentHelp("Bytes per receive buffer, like 16384 or 16KiB (default 16KiB).", valueName: "size"))
    var bufferSize: String?

    @Option(help: "Receive buffers per worker: a power of two up to 32768 (default 1024).")
    var buffers: Int?

    @Option(help: ArgumentHelp("Backend connect timeout, like 3s or 500ms (default 3s).", valueName: "duration"))
    var connectTimeout: String?

    @Option(help: "Other backends to try after a failed connect (default 2).")
    var retries: Int?

    @Option(help: ArgumentHelp("Close connections idle this long; 0 = never (default 1h).", valueName: "duration"))
    var idleTimeout: String?

    @Option(help: "Open client connections at most, shared across workers (default 100000).")
    var maxConnections: Int?

    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

    @Flag(inversion: .prefixedNo, help: "Let a kernel thread poll each ring's submission queue (IORING_SETUP_SQPOLL).")
    var sqpoll: Bool?

    @Option(help: ArgumentHelp("Zero-copy sends (IORING_OP_SEND_ZC): on, off or auto (large sends only; default off).", valueName: "mode"))
    var zerocopy: String?

    @Option(help: ArgumentHelp("Balancing: weighted-random, round-robin, least-conn, p2c or source-hash (default p2c).", valueName: "algorithm"))
    var balance: String?

    @Option(help: ArgumentHelp("Send the PROXY protocol header to backends: v1, v2 or none (default none).", valueName: "version"))
    var sendProxy: String?

    @Option(help: ArgumentHelp("Serve only clients from this address block, like 10.0.0.0/8 (repeatable; default: all).", valueName: "cidr"))
    var allow: [String] = []

    @Option(help: ArgumentHelp("Refuse clients from this address block (repeatable; wins over --allow).", valueName: "cidr"))
    var deny: [String] = []

    @Option(help: ArgumentHelp("Require a PROXY header (v1 or v2) from this balancer's block; its client address counts (repeatable).", valueName: "cidr"))
    var acceptProxy: [String] = []

    @Option(help: "Open connections per client address at most, over all workers (default: no limit).")
    var maxConnectionsPerClient: Int?

    @Option(help: "New connections per second per client address, a burst of as many (default: no limit).")
    var newConnectionsPerClient: Int?

    @Option(help: ArgumentHelp("Serve /metrics, /healthz and /backends here (port, or host:port; host defaults to 127.0.0.1).", valueName: "address"))
    var admin: String?

    @Option(help: ArgumentHelp("A file holding the bearer token the admin endpoint requires (all but /healthz); needed when --admin is not loopback.", valueName: "file"))
    var adminTokenFile: String?

    @Option(help: ArgumentHelp("On SIGTERM/SIGINT, let connections finish this long (default 30s).", valueName: "duration"))
    var drainTimeout: String?

    @Option(help: ArgumentHelp("Log a summary line this often (default off).", valueName: "duration"))
    var reportInterval: String?

    @Option(help: "Log format: text or json (default text).")
    var logFormat: String?

    @Flag(inversion: .prefixedNo, help: "Log one line per closed connection (default off).")
    var accessLog: Bool?

    @Option(help: ArgumentHelp("A DNS server for backend names, host:port (repeatable; default: /etc/resolv.conf's).", valueName: "host:port"))
    var resolver: [String] = []

    @Option(help: ArgumentHelp("Resolve a backend name again no sooner than this (default 1s).", valueName: "duration"))
    var dnsMinTtl: String?

    @Option(help: ArgumentHelp("Resolve a backend name again no later than this (default 300s).", valueName: "duration"))
    var dnsMaxTtl: String?

    @Option(help: ArgumentHelp("Keep the addresses of a name that no longer resolves this long (default 30s).", valueName: "duration"))
    var dnsHold: String?

    @Option(help: ArgumentHelp("A backend name that does not resolve at start: fail or wait (default fail).", valueName: "mode"))
    var dnsStart: String?

    static func main() {
        // `ctl` is a command of its own, parsed apart: its `--admin` (where to reach a proxy) is not the
        // proxy's `--admin` (where to serve), and a subcommand would see the root's options first.
        if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "ctl" {
            CtlCommand.main(Array(CommandLine.arguments.dropFirst(2)))
            exit()
        }
        let parsed: ParsableCommand
        do {
            parsed = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help, --version
            fail(fullMessage(for: error) + "\n" + "Run 'ringproxy --help' for the flags.", status: 2)
        }
        guard let command = parsed as? RingProxyCommand else {
            // ArgumentParser's own commands (`help`): let them run as it would.
            var builtIn = parsed
            do { try builtIn.run() } catch { exit(withError: error) }
            exit()
        }
        command.execute()
    }

    func execute() -> Never {
        let config: ProxyConfig
        do {
            config = try loadConfig()
        } catch {
            Self.fail(error.description, status: 2)
        }
        if check {
            print(summary(of: config))
            Glibc.exit(0)
        }
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: config.logLevel, format: config.logFormat) }
        let logger = Logger(label: "ringproxy")
        Lifecycle.blockSignals()
        let proxy = Proxy(config: config, logger: logger)
        do {
            try proxy.start()
        } catch {
            Self.fail(error.description, status: 1)
        }
        var admin: AdminServer?
        if let address = config.admin {
            do {
                let server = AdminServer(proxy: proxy, address: address, token: config.adminToken)
                let bound = try server.start()
                logger.info("admin endpoint listening", metadata: ["address": "\(bound)", "paths": "/metrics /healthz /backends"])
                admin = server
            } catch {
                proxy.stop()
                Self.fail(error.description, status: 1)
            }
        }
        let lifecycle = Lifecycle(
            proxy: proxy, logger: logger,
            reloadSource: self.config == nil ? nil : { () throws(ConfigError) in try loadConfig() },
            onDrain: { admin?.setDraining() })
        Glibc.exit(lifecycle.run())
    }

    func loadConfig() throws(ConfigError) -> ProxyConfig {
        let fileSettings = try config.map { path throws(ConfigError) in try ConfigFile.read(path: path) } ?? ProxySettings()
        let settings = fileSettings.overridden(by: flagSettings())
        return try ProxyConfig.validate(settings, file: config)
    }

    /// The flags given, as settings that name their flag in any error.
    func flagSettings() -> ProxySettings {
        var settings = ProxySettings()
        var issues: [ConfigIssue] = []
        func source(_ flag: String) -> SettingSource { SettingSource(key: "--\(flag)") }
        if !listen.isEmpty { settings.listen = listen.map { Setting($0, source("listen")) } }
        if !backend.isEmpty {
            settings.backends = backend.compactMap { text in
                guard let spec = BackendSpec(flag: text) else {
                    issues.append(ConfigIssue(source("backend"), "expected host:port or host:port@weight (like 10.0.0.5:9000@3), got '\(text)'"))
                    return nil
                }
                return spec
            }
        }
        settings.threads = threads.map { Setting($0, source("threads")) }
        settings.pin = pin.map { Setting($0, source("pin")) }
        settings.cpus = cpus.map { Setting($0, source("cpus")) }
        settings.ringSize = ringSize.map { Setting($0, source("ring-size")) }
        settings.buffers = buffers.map { Setting($0, source("buffers")) }
        settings.retries = retries.map { Setting($0, source("retries")) }
        settings.maxConnections = maxConnections.map { Setting($0, source("max-connections")) }
        settings.logLevel = logLevel.map { Setting($0, source("log-level")) }
        settings.sqpoll = sqpoll.map { Setting($0, source("sqpoll")) }
        settings.zerocopy = zerocopy.map { Setting($0, source("zerocopy")) }
        settings.balance = balance.map { Setting($0, source("balance")) }
        settings.sendProxy = sendProxy.map { Setting($0, source("send-proxy")) }
        // As the file's top-level keys: the flat listener's, and the default of every [[listeners]] entry.
        if !allow.isEmpty { settings.routing.allow = Setting(allow, source("allow")) }
        if !deny.isEmpty { settings.routing.deny = Setting(deny, source("deny")) }
        if !acceptProxy.isEmpty { settings.routing.acceptProxy = Setting(acceptProxy, source("accept-proxy")) }
        settings.routing.maxConnectionsPerClient = maxConnectionsPerClient.map { Setting($0, source("max-connections-per-client")) }
        settings.routing.newConnectionsPerClient = newConnectionsPerClient.map { Setting($0, source("new-connections-per-client")) }
        settings.admin = admin.map { Setting($0, source("admin")) }
        settings.adminTokenFile = adminTokenFile.map { Setting($0, source("admin-token-file")) }
        settings.logFormat = logFormat.map { Setting($0, source("log-format")) }
        settings.accessLog = accessLog.map { Setting($0, source("access-log")) }
        if !resolver.isEmpty { settings.resolvers = Setting(resolver, source("resolver")) }
        settings.dnsStart = dnsStart.map { Setting($0, source("dns-start")) }
        if let bufferSize {
            if let bytes = Units.byteSize(bufferSize) {
                settings.bufferSize = Setting(bytes, source("buffer-size"))
            } else {
                issues.append(ConfigIssue(source("buffer-size"), "expected a size like 16384 or 16KiB, got '\(bufferSize)'"))
            }
        }
        let durations: [(String, String?, WritableKeyPath<ProxySettings, Setting<Duration>?>)] = [
            ("connect-timeout", connectTimeout, \.connectTimeout), ("idle-timeout", idleTimeout, \.idleTimeout),
            ("drain-timeout", drainTimeout, \.drainTimeout), ("report-interval", reportInterval, \.reportInterval),
            ("dns-min-ttl", dnsMinTtl, \.dnsMinTTL), ("dns-max-ttl", dnsMaxTtl, \.dnsMaxTTL), ("dns-hold", dnsHold, \.dnsHold),
        ]
        for (flag, text, setting) in durations {
            guard let text else { continue }
            if let duration = Units.duration(text) {
                settings[keyPath: setting] = Setting(duration, source(flag))
            } else {
                issues.append(ConfigIssue(source(flag), "expected a duration like 3s, 500ms or 1h, got '\(text)'"))
            }
        }
        settings.problems = issues
        return settings
    }

    func summary(of config: ProxyConfig) -> String {
        var lines = ["configuration OK"]
        for listener in config.listeners {
            let backends = listener.backends.map { backend in
                "\(backend.name) (\(backend.address), weight \(backend.weight)"
                    + (backend.maxConnections > 0 ? ", max \(backend.maxConnections)" : "") + ")"
            } + listener.names.filter { named in !listener.backends.contains { $0.origin == named.query } }.map { named in
                "\(named.name) (no address yet)"
            }
            lines.append("  listener \(listener.name) \(listener.address) \(listener.balance.rawValue)"
                + (listener.sendProxy.map { " send-proxy \($0.rawValue)" } ?? "") + " -> "
                + (backends.isEmpty ? "the pools of its routes" : backends.joined(separator: ", ")))
            if let routing = listener.routing { lines.append("    " + describe(routing)) }
        }
        lines.append("  \(config.threads) workers, ring \(config.ringSize), \(config.buffersPerWorker) x \(config.bufferSize) B buffers per worker, max \(config.maxConnections) connections")
        let checks = config.health.checks.map { "checks every \($0.interval) (timeout \($0.timeout), rise \($0.rise), fall \($0.fall))" } ?? "no active checks"
        lines.append("  health: down after \(config.health.failThreshold) connect failures for \(config.health.failTimeout); \(checks)")
        let admin = config.admin.map { "\($0)" + (config.adminToken.map { " (bearer \($0))" } ?? "") } ?? "off"
        lines.append("  admin \(admin), drain timeout \(config.drainTimeout)")
        lines.append("  settings (a reload keeps the running value of those marked restart):")
        let rows = ProxyConfig.settings.map { (name: $0.name, value: $0.value(in: config), restart: !$0.reloadable) }
        let nameWidth = rows.map(\.name.count).max() ?? 0, valueWidth = rows.map(\.value.count).max() ?? 0
        func padded(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: width - text.count) }
        for row in rows {
            lines.append("    \(padded(row.name, nameWidth))  " + (row.restart ? "\(padded(row.value, valueWidth))  restart" : row.value))
        }
        return lines.joined(separator: "\n")
    }

    /// A listener's routing stage in one line: its routes, then the source rules and limits it sets.
    private func describe(_ routing: ListenerRouting) -> String {
        var parts = routing.routes.map { route in
            let names = route.serverNames.isEmpty ? "any name" : route.serverNames.map(\.description).joined(separator: " ")
            return "route \(names)" + (route.alpn.isEmpty ? "" : " alpn \(route.alpn.joined(separator: " "))") + " -> \(route.pool.name)"
        }
        if !routing.routes.isEmpty, !routing.hasDefaultPool { parts.append("unmatched clients closed") }
        if !routing.acceptProxy.isEmpty { parts.append("accept_proxy \(routing.acceptProxy)") }
        if !routing.allow.isEmpty { parts.append("allow \(routing.allow)") }
        if !routing.deny.isEmpty { parts.append("deny \(routing.deny)") }
        if routing.maxConnectionsPerClient > 0 { parts.append("at most \(routing.maxConnectionsPerClient) connections per client") }
        if routing.newConnectionsPerClient > 0 {
            parts.append("\(routing.newConnectionsPerClient) new connections per second per client, burst \(routing.newConnectionsBurst)")
        }
        if routing.prereads { parts.append("preread up to \(routing.prereadMax) B within \(routing.prereadTimeout)") }
        return parts.joined(separator: "; ")
    }

    static func fail(_ message: String, status: Int32) -> Never {
        var text = message.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "" : "ringproxy: \($0)" }.joined(separator: "\n")
        text += "\n"
        _ = Glibc.write(2, text, text.utf8.count)  // the String is passed as its NUL-terminated UTF-8
        Glibc.exit(status)
    }
}

extension BackendSpec {
    /// `host:port` or `host:port@weight`, as `--backend` takes it.
    init?(flag text: String) {
        let source = SettingSource(key: "--backend \(text)")
        var address = Substring(text)
        var weight: Setting<Int>? = nil
        if let at = text.lastIndex(of: "@") {
            guard let value = Int(text[text.index(after: at)...]) else { return nil }
            weight = Setting(value, source)
            address = text[..<at]
        }
        guard let (host, port) = SocketAddress.split(String(address)), !host.isEmpty else { return nil }
        self.init(host: Setting(host, source), port: Setting(Int(port), source), weight: weight, source: source)
    }
}
