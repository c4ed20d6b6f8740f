import RingProxy
import XCTest

/// Server name patterns for SNI routes: exact names and one-label wildcards.
final class ServerNamePatternTests: XCTestCase {
    private func pattern(_ text: String) -> ServerNamePattern { ServerNamePattern(text)! }

    func testExactNamesMatchIgnoringCaseAndTrailingDot() {
        let api = pattern("api.example.com")
        for name in ["api.example.com", "API.Example.COM", "api.example.com."] {
            XCTAssertTrue(api.matches(name), name)
        }
        for name in ["example.com", "a.api.example.com", "api.example.co", "api.example.comm", "api-example.com", "", ".",
                     "api.example.com..", "xapi.example.com"] {
            XCTAssertFalse(api.matches(name), name)
        }
        XCTAssertTrue(pattern("API.EXAMPLE.COM.").matches("api.example.com"))
    }

    func testWildcardsMatchExactlyOneLabel() {
        let wildcard = pattern("*.example.com")
        for name in ["a.example.com", "www.example.com", "A-B.EXAMPLE.COM", "x.example.com.", "_acme.example.com"] {
            XCTAssertTrue(wildcard.matches(name), name)
        }
        for name in ["example.com", "a.b.example.com", ".example.com", "aexample.com", "a.example.org", "a.example.com.x", "*.example.com.x",
                     "a..example.com"] {
            XCTAssertFalse(wildcard.matches(name), name)
        }
        XCTAssertTrue(pattern("*.com").matches("example.com"))
        XCTAssertFalse(pattern("*.com").matches("a.example.com"))
    }

    func testPatternsAreDNSNamesWithAnOptionalLeadingWildcard() {
        for text in ["", ".", "*", "*.", "**.example.com", "*example.com", "a.*.example.com", "*.*.example.com", "example.*",
                     "a..example.com", ".example.com", "exa mple.com", "é.example.com", "example.com..",
                     String(repeating: "a", count: 64) + ".com", Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".")] {
            XCTAssertNil(ServerNamePattern(text), "'\(text)'")
        }
        XCTAssertNotNil(ServerNamePattern(String(repeating: "a", count: 63) + ".com"))
        XCTAssertNotNil(ServerNamePattern("_service.example.com"))
        XCTAssertEqual(pattern("API.example.COM."), pattern("api.example.com"))
        XCTAssertNotEqual(pattern("*.example.com"), pattern("example.com"))
        XCTAssertEqual(pattern("*.Example.com").description, "*.example.com")
        XCTAssertTrue(pattern("*.example.com").isWildcard)
    }

    /// What the ClientHello reader gives (lowercased, no trailing dot) matches as configured.
    func testServerNamesFromTheReaderMatch() throws {
        let bytes = try RoutingFixtures.capture("ClientHello", "openssl-tls12.bin")
        let name = try XCTUnwrap(ClientHelloReader.parse(bytes).value?.serverName)
        XCTAssertTrue(pattern("Legacy.Example.com").matches(name))
        XCTAssertTrue(pattern("*.example.com").matches(name))
        XCTAssertFalse(pattern("*.legacy.example.com").matches(name))
    }
}
