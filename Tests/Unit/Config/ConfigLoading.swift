@testable import RingProxy

/// What the configuration tests share: a TOML text through the parser and validation as a config file goes
/// (two CPUs allowed), and the lines of the error it gives.
protocol ConfigLoading {}

extension ConfigLoading {
    func load(_ text: String) throws -> ProxyConfig {
        try ProxyConfig.validate(ConfigFile.parse(text, file: "test.toml"), file: "test.toml", allowedCPUs: [0, 1])
    }

    func errors(_ text: String) -> [String] {
        do {
            _ = try load(text)
            return []
        } catch {
            return "\(error)".split(separator: "\n").map(String.init)
        }
    }
}
