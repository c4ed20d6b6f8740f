import Glibc

/// The summary `ringload` prints on stdout when a run ends.
struct LoadReport {
    let title: String
    let elapsed: Double
    let result: RRResult

    var requestsPerSecond: Double { Double(result.requests) / elapsed }

    func latencyMilliseconds(_ percentile: Double) -> Double {
        Double(result.latency.valueAtPercentile(percentile)) / 1e6
    }

    var text: String {
        var lines = [title]
        lines.append("  requests   \(result.requests) in \(format(elapsed, 2)) s = \(format(requestsPerSecond, 1)) req/s")
        let megabytes = Double(result.bytesSent + result.bytesReceived) / elapsed / 1e6
        lines.append("  throughput \(format(megabytes, 2)) MB/s (both directions)")
        if result.requests > 0 {
            let percentiles = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)]
                .map { "\($0.0) \(format(latencyMilliseconds($0.1), 3))" }.joined(separator: "  ")
            lines.append("  latency ms \(percentiles)  max \(format(Double(result.latency.max) / 1e6, 3))")
        }
        let errorCount = result.errors.values.reduce(0, +)
        lines.append("  errors     \(errorCount)" + (errorCount > 0 ? " (" + result.errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")" : ""))
        return lines.joined(separator: "\n")
    }
}

/// `value` with `decimals` digits after the point.
func format(_ value: Double, _ decimals: Int) -> String {
    var text = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&text, text.count, "%.\(decimals)f", $0) }
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
