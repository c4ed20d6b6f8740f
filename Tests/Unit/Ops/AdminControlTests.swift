@testable import RingProxy
import XCTest

/// The pure parts of runtime control: naming a backend in a path and reading a request's parameters.
final class AdminControlTests: XCTestCase {
    func testPathsNameAPoolAndABackendAddressIPv6Included() {
        XCTAssertEqual(AdminControl.key("/backends/web/10.0.1.1:8080"), BackendKey(pool: "web", address: SocketAddress(numericHost: "10.0.1.1", port: 8080)!))
        XCTAssertEqual(AdminControl.key("/backends/db/%5B::1%5D:5432"), BackendKey(pool: "db", address: SocketAddress(numericHost: "::1", port: 5432)!))
        XCTAssertEqual(AdminControl.key("/backends/db/[::1]:5432")?.address.port, 5432)
        XCTAssertNil(AdminControl.key("/backends/web"), "no address")
        XCTAssertNil(AdminControl.key("/backends/web/db1.internal:80"), "names are not addresses")
        XCTAssertNil(AdminControl.key("/backends//10.0.1.1:80"), "no pool")
    }

    func testParametersComeFromAFormAJSONObjectOrTheQuery() throws {
        XCTAssertEqual(try AdminControl.parameters(query: nil, body: Array("state=drain&weight=5".utf8)).get(), ["state": "drain", "weight": "5"])
        XCTAssertEqual(try AdminControl.parameters(query: nil, body: Array(#"{"state": "maint", "weight": 7}"#.utf8)).get(), ["state": "maint", "weight": "7"])
        XCTAssertEqual(try AdminControl.parameters(query: "state=ready", body: []).get(), ["state": "ready"])
        XCTAssertEqual(try AdminControl.parameters(query: "state=ready", body: Array("state=drain".utf8)).get(), ["state": "drain"], "the body wins")
        XCTAssertThrowsError(try AdminControl.parameters(query: nil, body: Array(#"{"state": true}"#.utf8)).get())
        XCTAssertThrowsError(try AdminControl.parameters(query: nil, body: Array("{not json".utf8)).get())
    }
}
