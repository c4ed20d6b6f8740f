import Foundation
import Glibc
@testable import RingProxy
import XCTest

/// Every byte, whatever the sizes, write patterns and half-closes: random streams through the proxy, each
/// checked end to end against its pattern.
final class IntegrityTests: XCTestCase {
    func testRandomStreamsWithRandomChunkingAndHalfClosesArriveIntact() throws {
        let backends = try (0..<2).map { _ in try TestServer(.echo) }
        let proxy = try ProxyHarness(backends[0], backends[1])
        defer { proxy.stop() }
        var check = ConcurrentEcho(address: proxy.address, connections: 64)
        check.sizes = 1...(16 << 20)
        check.chunks = 1...65536
        check.halfCloseChance = 0.5
        check.until = monotonicMilliseconds() + 4000
        check.seed = UInt64(time(nil))
        let outcome = check.run()
        print("integrity: \(outcome.verified) streams, \(outcome.bytesChecked) bytes checked, \(outcome.failures.count) failed (seed \(check.seed))")
        XCTAssertEqual(outcome.failures.prefix(5), [], "seed \(check.seed)")
        XCTAssertGreaterThan(outcome.verified, 100)
        XCTAssertTrue(eventually { proxy.total(.active) == 0 }, "no connection left behind")
    }
}
