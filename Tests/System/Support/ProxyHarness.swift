import Logging
@testable import RingProxy
import XCTest

/// Runs a RingProxy in this process on an ephemeral port, in front of the given backends.
final class ProxyHarness {
    let proxy: Proxy
    /// The settings it started with; `reload` starts from them.
    let settings: ProxySettings
    var address: SocketAddress { proxy.listenAddresses[0] }
    var counters: [WorkerCounters] { proxy.counters }
    var table: BackendTable { proxy.table }
    /// The pool of the first listener.
    var pool: BackendPool { proxy.plan.pools[0] }

    /// A counter of the first pool's `member`-th backend, summed over the workers.
    func backendCount(_ counter: BackendTable.Counter, _ member: Int) -> Int {
        proxy.table.sum(counter, backend: pool.members[member].id)
    }

    /// `configure` adjusts the settings (threads, timeouts, limits) before validation.
    init(backends: [(SocketAddress, weight: Int)], configure: (inout ProxySettings) -> Void = { _ in }) throws {
        raiseOpenFileLimit()
        var settings = ProxySettings()
        let source = SettingSource(key: "test")
        settings.listen = [Setting("127.0.0.1:0", source)]
        settings.backends = backends.map { address, weight in
            BackendSpec(host: Setting(address.host, source), port: Setting(Int(address.port), source),
                        weight: Setting(weight, source), source: source)
        }
        settings.threads = Setting(2, source)
        settings.pin = Setting(false, source)
        configure(&settings)
        self.settings = settings
        let config = try ProxyConfig.validate(settings)
        var logger = Logger(label: "ringproxy-test")
        logger.logLevel = .error
        proxy = Proxy(config: config, logger: logger)
        try proxy.start()
    }

    convenience init(_ servers: TestServer..., configure: (inout ProxySettings) -> Void = { _ in }) throws {
        try self.init(backends: servers.map { ($0.address, weight: 1) }, configure: configure)
    }

    func stop() { proxy.stop() }

    /// Reloads with the starting settings changed by `configure`.
    @discardableResult
    func reload(_ configure: (inout ProxySettings) -> Void) throws -> ReloadOutcome {
        var changed = settings
        configure(&changed)
        return try proxy.reload(to: ProxyConfig.validate(changed))
    }

    /// A counter summed over the workers.
    func total(_ name: WorkerCounters.Name) -> Int { counters.total(name) }
}
