import CoreMetrics
import Prometheus

/// `GET /metrics`: the proxy's live counters in Prometheus text format, through swift-metrics counters and
/// gauges backed by a swift-prometheus registry of the exporter's own (no global bootstrap, so several
/// proxies can live in one process, as in the tests).
///
/// The data plane never touches swift-metrics: it keeps its plain atomics (`WorkerCounters`, the backend
/// table), and each scrape reads them and brings the metrics up to date — a counter moves by what its
/// atomic moved since the last scrape, a gauge takes the value. So metrics cost nothing between scrapes.
final class MetricsExporter: Sendable {
    private let proxy: Proxy
    private let admin: AdminCounters
    private let registry = PrometheusCollectorRegistry()
    private let state: Locked<Series>

    /// The metrics made so far, by name and labels, with what each counter last reported.
    struct Series {
        var counters: [String: (metric: CoreMetrics.Counter, reported: Int)] = [:]
        var gauges: [String: CoreMetrics.Gauge] = [:]
        var touched = Set<String>()
    }

    init(proxy: Proxy, admin: AdminCounters) {
        self.proxy = proxy
        self.admin = admin
        state = Locked(Series())
    }

    /// The exposition of every metric as of now.
    func render(draining: Bool) -> String {
        let factory = PrometheusMetricsFactory(registry: registry)
        let plan = proxy.plan
        let table = proxy.table
        state.withLock { series in
            series.touched = []
            let now = monotonicMilliseconds()
            for listener in plan.listeners {
                for (pool, prefix) in listener.pools {
                for (index, member) in pool.members.enumerated() {
                    // A route's pool shows its backends as `pool/backend`.
                    let backend = prefix == listener.name ? member.name : "\(pool.name)/\(member.name)"
                    let labels = [("listener", listener.name), ("backend", backend)]
                    let id = member.id
                    let health = table.health(of: id)
                    series.gauge("ringproxy_backend_active_connections", labels, table.sum(.active, backend: id), factory)
                    series.counter("ringproxy_backend_connections_total", labels, table.sum(.total, backend: id), factory)
                    series.counter("ringproxy_backend_connect_failures_total", labels, table.sum(.connectFailures, backend: id), factory)
                    series.counter("ringproxy_backend_bytes_to_backend_total", labels, table.sum(.bytesToBackend, backend: id), factory)
                    series.counter("ringproxy_backend_bytes_to_client_total", labels, table.sum(.bytesToClient, backend: id), factory)
                    series.counter("ringproxy_backend_health_changes_total", labels, health.stateChanges, factory)
                    series.gauge("ringproxy_backend_up", labels, health.state == .up ? 1 : 0, factory)
                    series.gauge("ringproxy_backend_weight", labels, member.weight, factory)
                    series.gauge("ringproxy_backend_effective_weight", labels, pool.effectiveWeight(of: index, table: table, now: now), factory)
                    let state = health.displayState
                    for name in Self.backendStates {
                        series.gauge("ringproxy_backend_state", labels + [("state", name)], state == name ? 1 : 0, factory)
                    }
                    // Where the address came from, as a label of its own series: the others keep theirs.
                    series.gauge("ringproxy_backend_info", labels + [("address", "\(member.address)"), ("origin", member.origin)], 1, factory)
                }
                }
            }
            for (query, stats) in proxy.discoveryStats {
                let labels = [("name", "\(query)")]
                series.counter("ringproxy_dns_queries_total", labels, stats.queries, factory)
                series.counter("ringproxy_dns_failures_total", labels, stats.failures, factory)
                series.counter("ringproxy_dns_changes_total", labels, stats.changes, factory)
                series.gauge("ringproxy_dns_addresses", labels, stats.addresses, factory)
            }
            for (index, counters) in proxy.counters.enumerated() {
                let labels = [("worker", "\(index)")]
                series.gauge("ringproxy_worker_active_connections", labels, counters[.active], factory)
                series.gauge("ringproxy_worker_spilled_bytes", labels, counters[.spilledBytes], factory)
                for (name, counter) in Self.workerCounters {
                    series.counter("ringproxy_worker_\(name)_total", labels, counters[counter], factory)
                }
                // The routing stage (issue 12): only where a listener routes.
                if plan.listeners.contains(where: { $0.routing != nil }) {
                    series.counter("ringproxy_worker_routed_total", labels, counters[.routed], factory)
                    series.gauge("ringproxy_worker_held_bytes", labels, counters[.heldBytes], factory)
                    for reason in Rejection.allCases {
                        series.counter("ringproxy_worker_rejected_total", labels + [("reason", "\(reason)")], counters[reason.counter], factory)
                    }
                }
            }
            let stats = proxy.processStats
            series.counter("ringproxy_reloads_total", [], stats.reloads, factory)
            series.counter("ringproxy_reload_failures_total", [], stats.reloadFailures, factory)
            series.counter("ringproxy_dns_plans_total", [], stats.discoveryPlans, factory)
            series.counter("ringproxy_dns_plan_failures_total", [], stats.discoveryPlanFailures, factory)
            series.gauge("ringproxy_config_generation", [], plan.generation, factory)
            series.gauge("ringproxy_uptime_seconds", [], Int((monotonicMilliseconds() - proxy.startedAt) / 1000), factory)
            series.gauge("ringproxy_draining", [], draining ? 1 : 0, factory)
            series.gauge("ringproxy_admin_connections", [], admin.open.load(ordering: .relaxed), factory)
            series.counter("ringproxy_admin_connections_refused_total", [], admin.rejected.load(ordering: .relaxed), factory)
            series.counter("ringproxy_admin_idle_closed_total", [], admin.idleClosed.load(ordering: .relaxed), factory)
            series.counter("ringproxy_admin_unauthorized_total", [], admin.unauthorized.load(ordering: .relaxed), factory)
            series.removeUntouched()
        }
        return registry.emitToString()
    }

    /// The values of `ringproxy_backend_state`'s `state` label: one series each, 1 for the backend's state.
    private static let backendStates = ["up", "down", "drain", "maint"]

    private static let workerCounters: [(String, WorkerCounters.Name)] = [
        ("accepted", .accepted), ("closed", .closed), ("accept_errors", .acceptErrors),
        ("connect_failures", .connectFailures), ("no_backend", .noBackend), ("idle_timeouts", .idleTimeouts),
        ("client_address_unknown", .clientAddressUnknown),
        ("bytes_upstream", .bytesUpstream), ("bytes_downstream", .bytesDownstream),
        ("sqes_submitted", .submissions), ("cqes_reaped", .completions), ("kernel_enters", .kernelEnters),
        ("buffer_ring_empty", .bufferRingEmpty), ("zero_copy_sends", .zeroCopySends),
        ("resets_deferred", .resetsDeferred), ("spills", .spills), ("shed", .shed),
        ("chain_sends", .chainSends), ("chained_buffers", .chainedBuffers),
    ]
}

extension MetricsExporter.Series {
    fileprivate mutating func counter(_ name: String, _ labels: [(String, String)], _ value: Int, _ factory: PrometheusMetricsFactory) {
        let key = Self.key(name, labels)
        touched.insert(key)
        let entry = counters[key] ?? (CoreMetrics.Counter(label: name, dimensions: labels, factory: factory), 0)
        if value > entry.reported { entry.metric.increment(by: value - entry.reported) }
        counters[key] = (entry.metric, max(value, entry.reported))
    }

    fileprivate mutating func gauge(_ name: String, _ labels: [(String, String)], _ value: Int, _ factory: PrometheusMetricsFactory) {
        gauge(name, labels, Double(value), factory)
    }

    fileprivate mutating func gauge(_ name: String, _ labels: [(String, String)], _ value: Double, _ factory: PrometheusMetricsFactory) {
        let key = Self.key(name, labels)
        touched.insert(key)
        let gauge = gauges[key] ?? CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
        gauge.record(value)
        gauges[key] = gauge
    }

    /// Series of backends and listeners a reload removed.
    fileprivate mutating func removeUntouched() {
        for key in counters.keys where !touched.contains(key) { counters.removeValue(forKey: key)?.metric.destroy() }
        for key in gauges.keys where !touched.contains(key) { gauges.removeValue(forKey: key)?.destroy() }
    }

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        name + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }
}
