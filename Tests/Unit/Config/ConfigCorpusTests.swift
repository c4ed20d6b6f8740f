import RingProxy
import XCTest

/// Every input of the config fuzzer's corpus (Tests/Fuzz/corpus: seeds, and each crash the fuzzer found,
/// once fixed) goes through the loader as `ringproxy --config` takes it: it must answer with a config or a
/// ConfigError that names at least one problem. `make fuzz` explores from these; this keeps them passing.
final class ConfigCorpusTests: XCTestCase {
    private static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    func testEveryCorpusInputLoadsOrFailsWithConfigError() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        XCTAssertGreaterThan(names.count, 10, "the corpus is at \(Self.corpus.path)")
        var valid = 0
        for name in names {
            let data = try Data(contentsOf: Self.corpus.appendingPathComponent(name))
            let text = String(decoding: data, as: UTF8.self)
            do {
                let settings = try ConfigFile.parse(text, file: name)
                let config = try ProxyConfig.validate(settings.overridden(by: ProxySettings()), file: name, allowedCPUs: [0, 1, 2, 3])
                XCTAssertFalse(config.listeners.isEmpty, name)
                valid += 1
            } catch {
                XCTAssertFalse(error.issues.isEmpty, name)
                XCTAssertFalse(error.description.isEmpty, name)
            }
        }
        XCTAssertGreaterThan(valid, 0, "the corpus holds valid configs too")
    }

    /// The seeds that cover each layout with every key are valid configs, so the fuzzer starts from inputs
    /// that reach the end of validation.
    func testValidSeedsAreValid() throws {
        for name in ["flat-minimal.toml", "flat-readme.toml", "every-key-flat.toml", "listeners-every-key.toml", "shipped-docker.toml",
                     "health-checks-every-key.toml", "health-send-expect.toml", "discovery-keys.toml"] {
            let text = try String(contentsOf: Self.corpus.appendingPathComponent(name), encoding: .utf8)
            XCTAssertNoThrow(try ProxyConfig.validate(ConfigFile.parse(text, file: name), file: name, allowedCPUs: [0, 1, 2, 3]), name)
        }
    }

    /// Found by `make fuzz`: toml++ 3.4 (inside TOMLKit) aborted the process on a table header whose name
    /// starts with a character no key starts with, on a `}` where an array expects a value, and on a date
    /// followed by `T` and no time. These are
    /// syntax errors on their line (exit 2), not an abort.
    func testInputsThatAbortedTheTOMLParserAreSyntaxErrors() {
        let cases: [(String, Int)] = [
            ("[{a]\n", 1),
            ("port = 8080\n[\n", 2),
            ("port = 8080\r\n[\r\n", 2),
            ("port = 8080\n\n  [[ [backends]]\n", 3),
            ("[[\u{3000}{x}]]\n", 1),
            ("a = 1\n[.b]\n", 2),
        ]
        for (text, line) in cases {
            XCTAssertThrowsError(try ConfigFile.parse(text, file: "f.toml"), text.debugDescription) { error in
                let issues = (error as? ConfigError)?.issues ?? []
                XCTAssertEqual(issues.map(\.source.key), ["syntax"], text.debugDescription)
                XCTAssertEqual(issues.first?.source.line, line, text.debugDescription)
            }
        }
        for (text, line) in [("cpus = [0,}1, 3]\n", 1), ("a = 1\nb = [\n  # c\n  }\n", 4), ("b = [1, 2, }\n", 1),
                             ("a = 1\nwhen = 1979-05-27Ta0:00:00\n", 2), ("w = [1979-05-27t:0:00:00]\n", 1)] {
            XCTAssertThrowsError(try ConfigFile.parse(text, file: "f.toml"), text.debugDescription) { error in
                XCTAssertEqual((error as? ConfigError)?.issues.map(\.source.line), [line], text.debugDescription)
            }
        }
        // What toml++ parses itself is left to it: valid headers, and arrays that start a line.
        XCTAssertNoThrow(try ConfigFile.parse("[ \"health\" ]\nrise = 2\n", file: "f.toml"), "a quoted header")
        XCTAssertNoThrow(try ConfigFile.parse("cpus = [\n  0,\n  1,\n]\n[[backends]]\nhost = \"h\"\n", file: "f.toml"))
        XCTAssertNoThrow(try ConfigFile.parse("a = \"[,}\"\nb = \'[}\'\nc = \"\"\"\nx[,}\n\"\"\"\nd = [{}, {e = 1}]\n", file: "f.toml"), "in strings")
        XCTAssertNoThrow(try ConfigFile.parse("a = 1979-05-27T07:32:00Z\nb = 1979-05-27 # c\nc = \"1979-05-27Tx\"\n", file: "f.toml"), "dates")
    }

    /// The `bad-*` seeds each hold one class of mistake: every one must be rejected, with exactly the errors
    /// (key, line, message) the loader reports for it today, so a seed that starts to load, or loses one of its
    /// errors, fails here. A resolver's own words vary by host, so a `cannot resolve host` line is compared up
    /// to the host name.
    func testBadSeedsAreRejectedWithTheirErrors() throws {
        let expected: [String: [String]] = [
            "bad-listeners-shapes.toml": [
                ":3: health: expected a table ([health]), got a string (\"on\")",
                ": backends: expected an array of tables ([[backends]]), got an integer (3)",
                ": listeners[0]: expected a table with name, bind and [[listeners.backends]], got an integer (1)",
                ": listeners[1]: expected a table with name, bind and [[listeners.backends]], got a string (\"a\")",
                ": listeners[2]: expected a table with name, bind and [[listeners.backends]], got an array",
                ": listenrs: unknown key (did you mean 'listeners'?)",
                ": listeners: no listeners: add [[listeners]] entries, each with bind and [[listeners.backends]]",
            ],
            "bad-mixed-layouts.toml": [
                ":1: host: the flat layout (host, port, [[backends]], --listen, --backend) cannot be mixed with [[listeners]]",
                ":12: listeners[0].bind: give either bind or host and port, not both",
                ":15: listeners[1].name: duplicate listener name 'dup' (already used by listeners[0])",
                ":16: listeners[1].bind: 127.0.0.1:8080 is already the address of listeners[0]",
                ":18: listeners[1].backends[0].host: cannot resolve host 'nonexistent.invalid'",
                ":21: listeners[2].bind: expected host:port (like 127.0.0.1:8080 or [::1]:8080), got '8080'",
                ":22: listeners[2].listeners: unknown key",
                ":25: health.timeout: active health checks need health.interval",
                ":26: health.rise: active health checks need health.interval",
                ":27: health.unknown_key: unknown key",
                ": listeners[0].backends: no backends: add [[listeners.backends]] entries under this listener",
                ": listeners[2].backends: no backends: add [[listeners.backends]] entries under this listener",
            ],
            "bad-syntax.toml": [
                ":2: syntax: invalid TOML: Error while parsing table header: expected ']', saw '\\n'",
            ],
            "bad-types.toml": [
                ":1: host: expected a string, got an integer (8080)",
                ":2: port: expected an integer, got a string (\"8080\")",
                ":3: balance: expected a string, got an integer (3)",
                ":4: pin: expected true or false, got a string (\"yes\")",
                ":5: ring_size: expected a power of two from 2 to 32768, got 1000",
                ":6: buffer_size: expected a size like 16384 or \"16KiB\", got a string (\"16 bytes\")",
                ":7: buffers: expected a power of two from 2 to 32768, got -1",
                ":8: connect_timeout: expected a duration like 3, \"250ms\", \"3s\" or \"1h\", got a string (\"forever\")",
                ":9: idle_timeout: expected a duration (seconds, or a string like \"250ms\", \"3s\", \"1h\"), got an array",
                ":10: admin: expected a string, got a boolean (true)",
                ":11: cpus: expected a CPU list like \"0,2-3\", got '3-1,x'",
                ":12: zerocopy: expected one of \"off\", \"on\", \"auto\", got 'maybe'",
                ":13: log_level: expected one of trace, debug, info, notice, warning, error, critical, got 'loud'",
                ":14: log_format: expected a string, got a table",
                ":15: when: unknown key",
                ":16: day: unknown key (did you mean 'deny'?)",
                ":17: time: unknown key",
                ":18: ratio: unknown key",
                ":19: big: unknown key (did you mean 'pin'?)",
                ":20: small: unknown key",
                ":21: inf: unknown key (did you mean 'pin'?)",
                ":25: backends[0].port: expected a port from 1 to 65535, got 70000",
                ":26: backends[0].weight: expected a weight from 0 to 256, got -5",
                ":27: backends[1]: missing host",
                ":29: backends[2]: missing port",
                ":33: backends[3].port: expected a port from 1 to 65535, got 0",
            ],
            "bad-unicode-keys.toml": [
                ":3: backends[0].host: cannot resolve host 'é😀'",
                ":7: backends[0].balanc: unknown key",
                ": backends[0].: unknown key",
                ": backends[0].\t key: unknown key",
            ],
        ]
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).filter { $0.hasPrefix("bad-") }.sorted()
        XCTAssertEqual(names, expected.keys.sorted(), "each bad-* seed has its expected errors here")
        for name in names {
            let text = try String(contentsOf: Self.corpus.appendingPathComponent(name), encoding: .utf8)
            do {
                let settings = try ConfigFile.parse(text, file: name)
                _ = try ProxyConfig.validate(settings.overridden(by: ProxySettings()), file: name, allowedCPUs: [0, 1, 2, 3])
                XCTFail("\(name) loaded: a bad seed must be rejected")
            } catch {
                let lines = error.description.split(separator: "\n").map { line in
                    var line = String(line.dropFirst("config error: \(name)".count))
                    if let resolve = line.range(of: #"cannot resolve host '[^']*'"#, options: .regularExpression) {
                        line = String(line[..<resolve.upperBound])
                    }
                    return line
                }
                XCTAssertEqual(lines, expected[name], name)
            }
        }
    }
}
