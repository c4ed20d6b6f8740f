import Glibc

/// The summary `ringload` prints on stdout when a run ends.
struct LoadReport {
    let description: RunDescription
    let elapsed: Double
    let result: LoadResult

    var requestsPerSecond: Double { Double(result.requests) / elapsed }
    var megabytesPerSecond: Double { Double(result.bytesSent + result.bytesReceived) / elapsed / 1e6 }

    /// Whether the run did anything at all: its exit status is 1 when not.
    var movedAnything: Bool {
        description.mode == .stream ? result.bytesSent + result.bytesReceived > 0 : result.requests > 0
    }

    /// The latency at `percentile`, 0 without samples.
    func latencyMilliseconds(_ percentile: Double) -> Double {
        result.latency.totalCount == 0 ? 0 : Double(result.latency.valueAtPercentile(percentile)) / 1e6
    }

    var maxLatencyMilliseconds: Double {
        result.latency.totalCount == 0 ? 0 : Double(result.latency.max) / 1e6
    }

    static let percentiles = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)]

    var text: String {
        let seconds = format(elapsed, 2)
        var lines = [description.title]
        switch description.mode {
        case .rr:
            lines.append("  requests   \(result.requests) in \(seconds) s = \(format(requestsPerSecond, 1)) req/s")
        case .connect:
            lines.append("  connections \(result.requests) in \(seconds) s = \(format(requestsPerSecond, 1)) conn/s")
        case .stream:
            lines.append("  bytes      \(result.bytesSent) sent, \(result.bytesReceived) received in \(seconds) s")
        case .idle:
            lines.append("  connected  \(result.requests) (run of \(seconds) s)")
        }
        if description.mode != .idle {
            lines.append("  throughput \(format(megabytesPerSecond, 2)) MB/s (both directions)")
        }
        if result.latency.totalCount > 0 {
            let values = Self.percentiles.map { "\($0.0) \(format(latencyMilliseconds($0.1), 3))" }.joined(separator: "  ")
            lines.append("  latency ms \(values)  max \(format(maxLatencyMilliseconds, 3))")
        }
        lines.append("  errors     \(result.errorCount)" + (result.errorCount > 0 ? " (\(result.failureSummary))" : ""))
        return lines.joined(separator: "\n")
    }
}

/// `value` with `decimals` digits after the point.
func format(_ value: Double, _ decimals: Int) -> String {
    var text = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&text, text.count, "%.\(decimals)f", $0) }
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
