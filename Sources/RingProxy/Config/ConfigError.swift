/// One problem with the configuration, tied to the key (and line, or flag) that caused it.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public var source: SettingSource
    public var message: String

    public init(_ source: SettingSource, _ message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "\(source): \(message)" }
}

/// Every problem found in a configuration; a configuration with any is never applied, not even in part.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file the settings came from, when there was one.
    public var file: String?
    public var issues: [ConfigIssue]

    public init(file: String? = nil, issues: [ConfigIssue]) {
        self.file = file
        self.issues = issues
    }

    public var description: String {
        // In file order; flag problems (no line) after.
        let ordered = issues.enumerated().sorted { ($0.element.source.line ?? .max, $0.offset) < ($1.element.source.line ?? .max, $1.offset) }
        return ordered.map(\.element).map { issue in
            // A flag's problem is not the file's.
            let location = issue.source.key.hasPrefix("--") ? ""
                : file.map { file in issue.source.line.map { "\(file):\($0): " } ?? "\(file): " } ?? ""
            return "config error: \(location)\(issue.source.key): \(issue.message)"
        }.joined(separator: "\n")
    }
}
