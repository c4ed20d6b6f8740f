import Foundation
@testable import RingProxy
import RingSystem
import XCTest

/// The per-client limit table shared by the workers: open connections counted exactly from many threads,
/// and the token bucket's refill, burst and zero-word start.
final class ClientLimitsTests: XCTestCase {
    func testOpenConnectionsAreExactUnderConcurrentThreads() {
        let limits = ClientLimits()
        let row = ClientLimits.row(listener: 1, clientKey: 42)
        let granted = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            var mine = 0
            for _ in 0..<1000 where limits.open(row: row, limit: 100) { mine += 1 }
            granted.withLock { $0 += mine }
        }
        XCTAssertEqual(granted.withLock { $0 }, 100, "exactly the limit, however the threads raced")
        XCTAssertEqual(limits.openConnections(row: row), 100)
        for _ in 0..<100 { limits.close(row: row) }
        XCTAssertEqual(limits.openConnections(row: row), 0)
        XCTAssertTrue(limits.open(row: row, limit: 1))
    }

    func testRowsDependOnListenerAndClient() {
        let a = ClientLimits.row(listener: 1, clientKey: 7), b = ClientLimits.row(listener: 2, clientKey: 7)
        let c = ClientLimits.row(listener: 1, clientKey: 8)
        XCTAssertNotEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertTrue((0..<Int32(ClientLimits.rowCount)).contains(a))
    }

    func testTokenBucketStartsFullRefillsAtTheRateAndCapsAtTheBurst() {
        let limits = ClientLimits()
        let row = ClientLimits.row(listener: 1, clientKey: 99)
        let start = monotonicMilliseconds()
        // A fresh (zero) row is a full bucket of `burst`.
        for index in 0..<5 { XCTAssertTrue(limits.takeToken(row: row, rate: 10, burst: 5, now: start), "token \(index)") }
        XCTAssertFalse(limits.takeToken(row: row, rate: 10, burst: 5, now: start))
        // 10 a second: one more after 100 ms, not after 99.
        XCTAssertFalse(limits.takeToken(row: row, rate: 10, burst: 5, now: start + 99))
        XCTAssertTrue(limits.takeToken(row: row, rate: 10, burst: 5, now: start + 100))
        XCTAssertFalse(limits.takeToken(row: row, rate: 10, burst: 5, now: start + 100))
        // A long pause refills no more than the burst.
        for _ in 0..<5 { XCTAssertTrue(limits.takeToken(row: row, rate: 10, burst: 5, now: start + 60_000)) }
        XCTAssertFalse(limits.takeToken(row: row, rate: 10, burst: 5, now: start + 60_000))
    }
}
