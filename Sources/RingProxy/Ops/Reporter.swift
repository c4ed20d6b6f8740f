import Logging

/// The periodic summary line (`--report-interval`): connections, rates over the interval, and each
/// backend's load and health.
struct Reporter {
    private let proxy: Proxy
    private var last: (time: Int64, accepted: Int, upstream: Int, downstream: Int)

    init(proxy: Proxy) {
        self.proxy = proxy
        last = (monotonicMilliseconds(), proxy.counters.total(.accepted), proxy.counters.total(.bytesUpstream),
                proxy.counters.total(.bytesDownstream))
    }

    mutating func log(to logger: Logger) {
        let counters = proxy.counters
        let now = monotonicMilliseconds()
        let seconds = max(0.001, Double(now - last.time) / 1000)
        let accepted = counters.total(.accepted), upstream = counters.total(.bytesUpstream)
        let downstream = counters.total(.bytesDownstream)
        let backends = proxy.plan.listeners.flatMap { listener in
            listener.pools.flatMap { pool, prefix in
                pool.members.map { member in
                    let health = proxy.table.health(of: member.id)
                    return "\(prefix)/\(member.name)=\(proxy.table.sum(.active, backend: member.id))"
                        + (health.state == .up ? "" : "(\(health.state))")
                }
            }
        }
        logger.info("report", metadata: [
            "active": "\(counters.total(.active))",
            "accepted_per_s": "\(Int((Double(accepted - last.accepted) / seconds).rounded()))",
            "upstream_MBps": "\(megabytes(Double(upstream - last.upstream) / seconds))",
            "downstream_MBps": "\(megabytes(Double(downstream - last.downstream) / seconds))",
            "connect_failures": "\(counters.total(.connectFailures))",
            "backends": "\(backends.joined(separator: " "))",
        ])
        last = (now, accepted, upstream, downstream)
    }

    private func megabytes(_ bytes: Double) -> String {
        let tenths = Int((bytes / 1e5).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
