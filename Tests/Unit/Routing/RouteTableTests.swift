@testable import RingProxy
import XCTest

/// The routing side table's entries and held bytes (`SlotBytes` under `RouteTable`), and the `ByteView`s the
/// parsers read.
final class RouteTableTests: XCTestCase {
    func testZeroedEntriesReadAsIdleDefaultPoolAndNoLimitRow() {
        let routes = RouteTable(capacity: 4)
        XCTAssertEqual(routes[3].pool, RouteEntry.defaultPool)
        XCTAssertEqual(routes[3].limitRow, -1)
        XCTAssertEqual(routes[3].phase, .idle)
        XCTAssertFalse(routes.held.holds(3))
        routes.setPool(2, of: 3)
        routes.setLimitRow(7, of: 3)
        XCTAssertEqual(routes[3].pool, 2)
        XCTAssertEqual(routes[3].limitRow, 7)
        XCTAssertEqual(routes[2].pool, RouteEntry.defaultPool, "a neighbour is untouched")
    }

    func testHeldBytesGrowKeepingWhatCameBeforeAndFreeWhatWasAllocated() {
        let routes = RouteTable(capacity: 2)
        let first: [UInt8] = Array("PROXY TCP4 ".utf8)
        let second = [UInt8](repeating: 0x41, count: 3000)
        let start = RouteTable.headroom
        XCTAssertEqual(routes.held.reserve(1, start + first.count, keeping: 0), SlotBytes.minimumCapacity)
        routes.held.copy(first, to: start, in: 1)
        routes[1].heldBytes = UInt32(first.count)
        XCTAssertEqual(routes.held.reserve(1, start + first.count, keeping: start + first.count), 0, "room enough")
        let needed = start + first.count + second.count
        XCTAssertEqual(routes.held.reserve(1, needed, keeping: start + first.count), needed - SlotBytes.minimumCapacity,
                       "grown to what is needed when that is more than twice the old")
        routes.held.copy(second, to: start + first.count, in: 1)
        routes[1].heldBytes = UInt32(first.count + second.count)
        XCTAssertEqual(bytes(routes.received(1)), first + second, "the bytes before the growth were kept")
        routes[1].stripped = UInt32(first.count)
        XCTAssertEqual(bytes(routes.payload(1)), second)
        XCTAssertEqual(routes.freeHeld(1), needed)
        XCTAssertFalse(routes.held.holds(1))
        XCTAssertEqual(routes.freeHeld(1), 0)
        XCTAssertEqual(routes.payload(0).count, 0, "a slot holding nothing reads as empty")
    }

    func testAByteViewOfAnArrayReadsItsBytesAndSlices() {
        ByteView.with([1, 2, 3, 4]) { view in
            XCTAssertEqual(view.count, 4)
            XCTAssertEqual(view.first, 1)
            XCTAssertEqual(bytes(view.slice(from: 1, count: 2)), [2, 3])
        }
        XCTAssertNil(ByteView.empty.first)
    }

    /// At the deadline, a PROXY header still due is counted apart from a ClientHello still short.
    func testTheDeadlineReasonIsTheProxyHeaderWhileOneIsDueAndThePrereadAfter() {
        var entry = RouteEntry()
        XCTAssertEqual(entry.timeoutReason, .prereadTimeout, "a client of an untrusted source: its hello")
        entry.expectsHeader = true
        XCTAssertEqual(entry.timeoutReason, .proxyHeaderTimeout)
        XCTAssertEqual(entry.timeoutReason.counter, .rejectedProxyHeaderTimeout)
        XCTAssertEqual("\(entry.timeoutReason)", "proxy_header_timeout")
        entry.expectsHeader = false  // the header was read: what is missing now is the hello
        XCTAssertEqual(entry.timeoutReason, .prereadTimeout)
        XCTAssertEqual(entry.timeoutReason.counter, .rejectedPrereadTimeout)
    }
}

private func bytes(_ view: ByteView) -> [UInt8] { (0..<view.count).map { view[$0] } }
