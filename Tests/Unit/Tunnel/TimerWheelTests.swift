@testable import RingProxy
import XCTest

/// The idle-timeout wheel against a real connection table, with ticks advanced by hand.
final class TimerWheelTests: XCTestCase {
    private var table = ConnectionTable(capacity: 64)
    private var wheel = TimerWheel(idleTicks: 8)

    private func open() -> UInt32 {
        let slot = table.open(client: -1, listener: 0, tunnel: Tunnel(retries: 0), now: wheel.now)!
        wheel.schedule(slot, in: table)
        return slot
    }

    /// Advances one tick and returns the slots that expired on it (released, as the worker does).
    private func tick() -> [UInt32] {
        wheel.advance()
        var expired: [UInt32] = []
        while let slot = wheel.popExpired(in: table) {
            expired.append(slot)
            table.free(slot)
        }
        return expired
    }

    /// A timeout in ticks, counted from the tick of the last activity, covers the whole timeout even when that
    /// activity came at the very end of its tick, and is at most one tick longer.
    func testATimeoutInTicksIsNeverShorterThanTheTimeoutAndAtMostATickLonger() {
        let tick = Worker.tickInterval.milliseconds
        XCTAssertNil(Worker.idleTicks(nil))
        for milliseconds in [1, 249, 250, 251, 300, 500, 999, 1000, 5000, 3_600_000] {
            let ticks = Int(Worker.idleTicks(.milliseconds(milliseconds))!)
            // Activity at the end of tick t, expiry at the start of tick t + ticks: (ticks - 1) whole ticks apart.
            XCTAssertGreaterThanOrEqual((ticks - 1) * Int(tick), milliseconds, "\(milliseconds) ms: \(ticks) ticks")
            XCTAssertLessThan((ticks - 1) * Int(tick), milliseconds + Int(tick), "\(milliseconds) ms: \(ticks) ticks")
        }
    }

    /// Ticks until `slot` expires (at most `limit` ticks) and returns how many it took, or nil.
    private func ticksUntilExpired(_ slot: UInt32, limit: Int = 10_000) -> Int? {
        for count in 1...limit where tick().contains(slot) { return count }
        return nil
    }

    func testIdleConnectionExpiresAfterExactlyTheTimeout() {
        let slot = open()
        XCTAssertEqual(ticksUntilExpired(slot), 8)
    }

    func testActivityPostponesExpiry() {
        let slot = open()
        for _ in 0..<5 { XCTAssertEqual(tick(), []) }
        table[slot].lastActive = wheel.now
        XCTAssertEqual(ticksUntilExpired(slot), 8, "8 ticks after its last activity, not after its accept")
    }

    func testNothingExpiresWhileTimeoutsAreOff() {
        let slot = open()
        wheel.changeTimeout(to: nil, in: table)
        XCTAssertNil(ticksUntilExpired(slot, limit: Int(TimerWheel.bucketCount) * 2 + 10))
    }

    /// The reload bug: off, then on again after the connection's bucket went by while off. It must still time out.
    func testTimeoutTurnedOffAndOnAgainStillExpiresConnections() {
        let slot = open()
        XCTAssertEqual(tick(), [])
        wheel.changeTimeout(to: nil, in: table)
        for _ in 0..<18 { XCTAssertEqual(tick(), []) }  // its old deadline (tick 8) passes while off
        wheel.changeTimeout(to: 8, in: table)
        XCTAssertEqual(ticksUntilExpired(slot), 1, "idle 19 ticks against a timeout of 8: due at once")
        XCTAssertEqual(table[slot].wheelLinks.list, .none)
    }

    func testShortenedTimeoutRefilesConnectionsUnderTheNewDeadline() {
        wheel.changeTimeout(to: 14_400, in: table)  // one hour of 250 ms ticks: beyond the wheel's horizon
        let slot = open()
        for _ in 0..<3 { XCTAssertEqual(tick(), []) }
        wheel.changeTimeout(to: 8, in: table)
        XCTAssertEqual(ticksUntilExpired(slot), 5)
    }

    func testLengthenedTimeoutAppliesWhenTheBucketComesRound() {
        let slot = open()
        wheel.changeTimeout(to: 20, in: table)
        XCTAssertEqual(ticksUntilExpired(slot), 20)
    }

    /// Releasing a slot while its bucket is being emptied must not cut its neighbours out of the wheel.
    func testRemovingASlotOfTheDueBucketKeepsTheOthers() {
        let slots = (0..<3).map { _ in open() }
        for _ in 0..<7 { XCTAssertEqual(tick(), []) }
        wheel.advance()
        let first = wheel.popExpired(in: table)!
        table.free(first)
        let middle = slots.first { $0 != first }!
        wheel.remove(middle, in: table)
        table.free(middle)
        var rest: [UInt32] = []
        while let slot = wheel.popExpired(in: table) { rest.append(slot); table.free(slot) }
        XCTAssertEqual(Set(rest), Set(slots).subtracting([first, middle]))
    }

    /// Releasing a slot filed while timeouts were off leaves the rest of its bucket intact.
    func testRemovingAParkedSlotKeepsItsBucket() {
        wheel.changeTimeout(to: nil, in: table)
        let slots = (0..<3).map { _ in open() }
        wheel.remove(slots[0], in: table)
        table.free(slots[0])
        wheel.changeTimeout(to: 8, in: table)
        var expired: [UInt32] = []
        for _ in 0..<8 { expired += tick() }
        XCTAssertEqual(Set(expired), Set(slots[1...]))
    }

    /// Many connections with random activity: each expires on exactly the tick its timeout ends, never before.
    func testRandomActivityExpiresEachConnectionOnTime() {
        var random = SystemRandomNumberGenerator()
        var deadlines: [UInt32: UInt32] = [:]
        for _ in 0..<2000 {
            if deadlines.count < 60, Bool.random(using: &random) {
                let slot = open()
                deadlines[slot] = wheel.now + 8
            }
            for slot in deadlines.keys where Int.random(in: 0..<10, using: &random) == 0 {
                table[slot].lastActive = wheel.now
                deadlines[slot] = wheel.now + 8
            }
            for slot in tick() {
                XCTAssertEqual(deadlines.removeValue(forKey: slot), wheel.now, "slot \(slot) expired off its deadline")
            }
            XCTAssertTrue(deadlines.values.allSatisfy { $0 > wheel.now }, "a connection outlived its deadline")
        }
    }
}
