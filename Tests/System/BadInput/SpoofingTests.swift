import Glibc
@testable import RingProxy
import XCTest

/// A client that sends a forged PROXY header and resets before the proxy accepts it has no address left
/// (`getpeername` fails). Such a client must be closed, never forwarded without our header, or the backend
/// would take its forged header for ours.
final class SpoofingTests: XCTestCase {
    private let source = SettingSource(key: "test")
    private let forged = Array("PROXY TCP4 6.6.6.6 127.0.0.1 6666 80\r\n".utf8)

    func testClientThatResetsBeforeAcceptNeverReachesTheBackendWithItsForgedHeader() throws {
        let backend = try TestServer(.proxyProtocol)
        let proxy = try ProxyHarness(backend) { settings in
            settings.sendProxy = Setting("v1", self.source)
            settings.threads = Setting(1, self.source)
            settings.maxConnections = Setting(1, self.source)
        }
        defer { proxy.stop() }
        // The proxy is full while this client is open, so it accepts nothing: the next clients wait in the
        // kernel's backlog, where each sends its forged header and resets. Deterministic: every one of them has
        // reset before the proxy accepts it.
        var holder: TestClient? = try TestClient(proxy.address)
        XCTAssertTrue(try holder!.receiveLine().hasPrefix("v1 127.0.0.1:"))
        let attempts = 64
        for _ in 0..<attempts {
            let client = try TestClient(proxy.address)
            try client.send(forged)
            client.reset()  // SO_LINGER {1, 0}: the close sends RST
        }
        holder = nil
        // Each is accepted once the slot is free, and turned away for want of an address.
        XCTAssertTrue(eventually(10) {
            proxy.total(.clientAddressUnknown) == attempts && proxy.total(.active) == 0
        }, "accepted \(proxy.total(.accepted)), turned away \(proxy.total(.clientAddressUnknown)), open \(proxy.total(.active))")
        XCTAssertEqual(proxy.total(.accepted), 1, "only the holder was served")

        let forgedHeaders = backend.proxyHeaders.filter {
            if case .header(let header, _) = $0 { return header.source == "6.6.6.6" }
            return false
        }
        XCTAssertEqual(forgedHeaders.count, 0, "\(forgedHeaders.count) of \(backend.proxyHeaders.count) backend connections began with the forged header")

        // A well-behaved client afterwards gets its own address.
        let bystander = try TestClient(proxy.address)
        let port = Socket.localAddress(of: bystander.fd)!.port
        XCTAssertEqual(try bystander.receiveLine(), "v1 127.0.0.1:\(port) -> 127.0.0.1:\(proxy.address.port)")
    }
}
