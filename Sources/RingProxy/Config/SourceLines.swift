/// Finds the line on which a key was written in a TOML document, so errors can point at it. TOMLKit reports
/// lines only for syntax errors; this scan covers the plain `key = value` form under `[table]` and
/// `[[array]]` headers, and answers nil for anything fancier (dotted or inline keys).
struct SourceLines {
    private struct Entry {
        var table: String
        var index: Int
        var key: String
        var line: Int
    }
    private var entries: [Entry] = []
    private var headers: [String: [Int]] = [:]

    /// Splits on `isNewline` rather than on "\n": Swift reads "\r\n" as one Character, so a file saved with
    /// Windows line ends would otherwise be one long line.
    init(_ text: String) {
        var table = ""
        var counts: [String: Int] = [:]
        for (offset, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: " ")
            if line.hasPrefix("[[") && line.hasSuffix("]]") {
                table = line.dropFirst(2).dropLast(2).trimmingCharacters(in: " ")
                counts[table, default: -1] += 1
                headers[table, default: []].append(offset + 1)
            } else if line.hasPrefix("[") && line.hasSuffix("]") {
                table = line.dropFirst().dropLast().trimmingCharacters(in: " ")
                counts[table] = 0
                headers[table, default: []].append(offset + 1)
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = line[..<equals].trimmingCharacters(in: " ")
                entries.append(Entry(table: table, index: counts[table] ?? 0, key: key, line: offset + 1))
            }
        }
    }

    /// The line of `key` directly in `table` (`""` for the top level), in its `index`-th `[[table]]` entry.
    func line(of key: String, in table: String = "", index: Int = 0) -> Int? {
        entries.first { $0.table == table && $0.index == index && $0.key == key }?.line
    }

    /// The line of the `index`-th `[[table]]` header.
    func header(_ table: String, index: Int = 0) -> Int? {
        guard let lines = headers[table], index < lines.count else { return nil }
        return lines[index]
    }
}
