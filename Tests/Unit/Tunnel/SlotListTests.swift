@testable import RingProxy
import XCTest

/// The wait lists share one set of links per slot (`waitLinks`): a slot is on one of them at most, and a
/// removal through another list must leave it, and that list's head, alone.
final class SlotListTests: XCTestCase {
    private var table = ConnectionTable(capacity: 8)

    private func open() -> UInt32 {
        table.open(client: -1, listener: 0, tunnel: Tunnel(retries: 0), now: 0)!
    }

    func testRemovingThroughAnotherListLeavesTheSlotWhereItIs() {
        var awaiting = SlotList(\.waitLinks, .awaitingDescriptor)
        var starved = SlotList(\.waitLinks, .starved)
        let first = open(), second = open()
        awaiting.insert(second, in: table)
        awaiting.insert(first, in: table)
        // What a release does for every wait list: before, this cut `awaiting`'s head loose and made
        // `starved` point into it, and `awaiting` then yielded the released slot for ever.
        starved.remove(first, in: table)
        XCTAssertTrue(starved.isEmpty)
        XCTAssertEqual(awaiting.popFirst(in: table), first)
        XCTAssertEqual(awaiting.popFirst(in: table), second)
        XCTAssertNil(awaiting.popFirst(in: table))
    }

    func testASlotIsOnOneWaitListAtMost() {
        var starved = SlotList(\.waitLinks, .starved)
        var lingering = SlotList(\.waitLinks, .lingering)
        let slot = open()
        starved.insert(slot, in: table)
        lingering.insert(slot, in: table)
        XCTAssertTrue(lingering.isEmpty, "inserted while on another list")
        starved.remove(slot, in: table)
        lingering.insert(slot, in: table)
        XCTAssertEqual(lingering.popFirst(in: table), slot)
        XCTAssertTrue(starved.isEmpty)
    }
}
