import Foundation

extension LoadReport {
    /// The JSON object `--json` writes.
    var json: [String: Any] {
        let percentileKeys = ["p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9]
        var latency = percentileKeys.mapValues { latencyMilliseconds($0) }
        latency["max"] = maxLatencyMilliseconds
        return [
            "mode": description.mode.rawValue,
            "target": description.target,
            "connections": description.connections,
            "threads": description.threads,
            "elapsed_s": elapsed,
            "requests": description.mode == .stream ? 0 : result.requests,
            "requests_per_s": description.mode == .stream ? 0 : requestsPerSecond,
            "bytes_sent": result.bytesSent,
            "bytes_received": result.bytesReceived,
            "mb_per_s": megabytesPerSecond,
            "latency_ms": latency,
            "errors": Dictionary(uniqueKeysWithValues: result.failures.map { ("\($0.key)", $0.value) }),
            "errors_total": result.errorCount,
        ]
    }

    func writeJSON(to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}
