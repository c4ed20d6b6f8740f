import Glibc
import Logging

/// A swift-log handler that writes one line per event to stderr with a single `write` (so lines from
/// different threads never interleave), as text for people or JSON for log pipelines:
///
///     2026-11-25T10:00:00.123Z info ringproxy started workers=2
///     {"time":"2026-11-25T10:00:00.123Z","level":"info","message":"ringproxy started","workers":"2"}
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let format: LogFormat

    public init(label: String, level: Logger.Level, format: LogFormat = .text) {
        self.label = label
        logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        var line: String
        switch format {
        case .text:
            line = "\(Self.timestamp()) \(event.level) \(event.message)"
            for key in merged.keys.sorted() {
                let value = "\(merged[key]!)"
                line += value.contains(" ") ? " \(key)=\"\(value)\"" : " \(key)=\(value)"
            }
        case .json:
            line = "{\"time\":\(Self.quoted(Self.timestamp())),\"level\":\(Self.quoted("\(event.level)")),\"message\":\(Self.quoted("\(event.message)"))"
            for key in merged.keys.sorted() where !["time", "level", "message"].contains(key) {
                line += ",\(Self.quoted(key)):\(Self.quoted("\(merged[key]!)"))"
            }
            line += "}"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// `text` as a JSON string literal.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// UTC, millisecond precision, without Foundation.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        var text = [CChar](repeating: 0, count: 32)
        strftime(&text, text.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let milliseconds = Int(now.tv_nsec / 1_000_000)
        let prefix = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return prefix + "." + String(repeating: "0", count: milliseconds < 10 ? 2 : milliseconds < 100 ? 1 : 0) + "\(milliseconds)Z"
    }
}
