import Glibc
import RingSystem

/// A JSON value, written by hand so that ringload needs no Foundation (`JSONSerialization` lives in the full
/// Foundation, with ICU behind it).
enum JSONValue {
    case string(String)
    case int(Int)
    case double(Double)
    case object([String: JSONValue])

    /// Pretty-printed with sorted keys, two spaces per level, as `JSONSerialization` wrote it.
    func text(indent: Int = 0) -> String {
        switch self {
        case .string(let value): return jsonQuoted(value)
        case .int(let value): return String(value)
        case .double(let value): return value.isFinite ? "\(value)" : "null"
        case .object(let members):
            guard !members.isEmpty else { return "{\n\n\(String(repeating: " ", count: indent))}" }
            let inner = String(repeating: " ", count: indent + 2)
            let lines = members.keys.sorted().map { "\(inner)\(jsonQuoted($0)) : \(members[$0]!.text(indent: indent + 2))" }
            return "{\n" + lines.joined(separator: ",\n") + "\n" + String(repeating: " ", count: indent) + "}"
        }
    }

}

/// Writing the `--json` file failed.
struct JSONWriteError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32
    var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
}

extension LoadReport {
    /// The JSON object `--json` writes.
    var json: JSONValue {
        let percentileKeys = ["p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9]
        var latency = percentileKeys.mapValues { JSONValue.double(latencyMilliseconds($0)) }
        latency["max"] = .double(maxLatencyMilliseconds)
        return .object([
            "mode": .string(description.mode.rawValue),
            "target": .string(description.target),
            "connections": .int(description.connections),
            "threads": .int(description.threads),
            "elapsed_s": .double(elapsed),
            "requests": description.mode == .stream ? .int(0) : .int(result.requests),
            "requests_per_s": description.mode == .stream ? .int(0) : .double(requestsPerSecond),
            "bytes_sent": .int(result.bytesSent),
            "bytes_received": .int(result.bytesReceived),
            "mb_per_s": .double(megabytesPerSecond),
            "latency_ms": .object(latency),
            "errors": .object(Dictionary(uniqueKeysWithValues: result.failures.map { ("\($0.key)", JSONValue.int($0.value)) })),
            "errors_total": .int(result.errorCount),
        ])
    }

    func writeJSON(to path: String) throws {
        let text = json.text()
        guard let file = fopen(path, "w") else { throw JSONWriteError(path: path, errno: errno) }
        let written = fwrite(text, 1, text.utf8.count, file)
        let failure = written != text.utf8.count ? errno : 0
        guard fclose(file) == 0, failure == 0 else { throw JSONWriteError(path: path, errno: failure != 0 ? failure : errno) }
    }
}
