/// Parsing of the human-friendly values a config file or flag may hold: durations and byte sizes.
public enum Units {
    /// `3`, `1.5` (seconds), `250ms`, `3s`, `2m`, `1h`.
    public static func duration(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: " ")
        let suffixes: [(String, Double)] = [("ms", 0.001), ("us", 0.000_001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in suffixes where trimmed.hasSuffix(suffix) {
            guard let number = Double(trimmed.dropLast(suffix.count)) else { return nil }
            return seconds(number * scale)
        }
        return Double(trimmed).flatMap(seconds)
    }

    public static func seconds(_ value: Double) -> Duration? {
        guard value.isFinite, value >= 0, value < 1e9 else { return nil }
        return .nanoseconds(Int64((value * 1e9).rounded()))
    }

    /// `duration` as a file or flag takes it: `3s`, `250ms`, `2m`, `1h`, `1500us`, `0s`.
    public static func text(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        guard nanoseconds != 0 else { return "0s" }
        let units: [(String, Int64)] = [("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)]
        for (suffix, scale) in units where nanoseconds % scale == 0 { return "\(nanoseconds / scale)\(suffix)" }
        return "\(Double(nanoseconds) / 1e9)s"
    }

    /// `16384`, `16k`, `16KiB`, `1m`, `1MiB` (powers of 1024).
    public static func byteSize(_ text: String) -> Int? {
        let lowered = text.trimmingCharacters(in: " ").lowercased()
        let suffixes: [(String, Int)] = [("kib", 1024), ("mib", 1 << 20), ("kb", 1024), ("mb", 1 << 20), ("k", 1024), ("m", 1 << 20), ("b", 1)]
        for (suffix, scale) in suffixes where lowered.hasSuffix(suffix) {
            guard let number = Int(lowered.dropLast(suffix.count)), number >= 0 else { return nil }
            return number.multipliedReportingOverflow(by: scale).overflow ? nil : number * scale
        }
        return Int(lowered)
    }

    /// `0,2-3` → [0, 2, 3].
    public static func cpuList(_ text: String) -> [Int]? {
        var cpus: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.trimmingCharacters(in: " ").split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2, let low = Int(bounds[0]), let high = Int(bounds.last!), low >= 0, low <= high, high < 4096 else {
                return nil
            }
            cpus.append(contentsOf: low...high)
        }
        return cpus.isEmpty ? nil : cpus
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    public var secondsDouble: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension StringProtocol {
    func trimmingCharacters(in character: Character) -> String {
        var slice = Substring(self)
        while slice.first == character { slice = slice.dropFirst() }
        while slice.last == character { slice = slice.dropLast() }
        return String(slice)
    }
}
