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
            line = "{\"time\":\(jsonQuoted(Self.timestamp())),\"level\":\(jsonQuoted("\(event.level)")),\"message\":\(jsonQuoted("\(event.message)"))"
            for key in merged.keys.sorted() where !["time", "level", "message"].contains(key) {
                line += ",\(jsonQuoted(key)):\(jsonQuoted("\(merged[key]!)"))"
            }
            line += "}"
        }
        line += "\n"
        let bytes = Array(line.utf8)
        _ = Glibc.write(2, bytes, bytes.count)
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
