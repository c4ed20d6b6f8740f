@testable import RingProxy
import XCTest

/// Every connection of a worker has a slot, so its size is memory per connection: held at 176 bytes or less.
final class ConnectionLayoutTests: XCTestCase {
    func testConnectionSlotIsAtMost176Bytes() {
        print("connection slot: \(MemoryLayout<Connection>.stride) bytes, tunnel \(MemoryLayout<Tunnel>.stride)")
        XCTAssertLessThanOrEqual(MemoryLayout<Connection>.stride, 176, "a connection slot grew past 176 bytes")
        XCTAssertLessThanOrEqual(MemoryLayout<Tunnel>.stride, 52, "the tunnel is most of the slot")
    }

    /// Fields written through the table land in the slot and stay there (in place, no copy of the slot).
    func testFieldsAreWrittenInPlace() {
        var table = ConnectionTable(capacity: 4)
        let slot = table.open(client: 7, listener: 1, tunnel: Tunnel(retries: 2), now: 3)!
        table[slot].backendFD = 9
        var actions = TunnelActions()
        table.handle(.connectSubmitted, at: slot, links: BufferLinks(buffers: 1), into: &actions)
        XCTAssertEqual(table[slot].backendFD, 9)
        XCTAssertEqual(table[slot].clientFD, 7)
        XCTAssertEqual(table[slot].tunnel.pendingOperations, 2)
        XCTAssertTrue(table.isLive(slot, generation: 0))
    }
}
