@testable import RingProxy
import XCTest

/// A buffer lent to zero-copy sends goes back only when its tunnel and every notification are done with it.
final class ZeroCopyLedgerTests: XCTestCase {
    func testTunnelDoneFirstThenNotification() {
        var ledger = ZeroCopyLedger(buffers: 8)
        ledger.lend(3)
        XCTAssertFalse(ledger.release(3), "the kernel may still read it")
        XCTAssertTrue(ledger.returned(3))
    }

    func testNotificationFirstThenTunnelDone() {
        var ledger = ZeroCopyLedger(buffers: 8)
        ledger.lend(3)
        XCTAssertFalse(ledger.returned(3), "the tunnel still holds it")
        XCTAssertTrue(ledger.release(3))
    }

    func testAShortSendResentWaitsForBothNotifications() {
        var ledger = ZeroCopyLedger(buffers: 8)
        ledger.lend(5)
        ledger.lend(5)
        XCTAssertFalse(ledger.release(5))
        XCTAssertFalse(ledger.returned(5))
        XCTAssertTrue(ledger.returned(5))
        XCTAssertTrue(ledger.release(6), "a buffer never lent goes back at once")
    }
}
