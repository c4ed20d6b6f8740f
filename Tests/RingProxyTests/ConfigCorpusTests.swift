import RingProxy
import XCTest

/// Every input of the config fuzzer's corpus (Tests/Fuzz/corpus: seeds, and each crash the fuzzer found,
/// once fixed) goes through the loader as `ringproxy --config` takes it: it must answer with a config or a
/// ConfigError that names at least one problem. `make fuzz` explores from these; this keeps them passing.
final class ConfigCorpusTests: XCTestCase {
    private static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
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
        for name in ["flat-minimal.toml", "flat-readme.toml", "every-key-flat.toml", "listeners-every-key.toml", "shipped-docker.toml"] {
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
}
