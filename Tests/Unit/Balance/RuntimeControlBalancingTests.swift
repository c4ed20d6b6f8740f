@testable import RingProxy
import XCTest

/// Drain, maintenance and slow start as every strategy sees them: through the row's shared words.
final class RuntimeControlBalancingTests: XCTestCase {
    private var table: BackendTable!
    private var random = FastRandom(seed: 13)

    override func setUp() { table = BackendTable(capacity: 16, shards: 1) }

    private func pool(_ algorithm: BalanceAlgorithm, weights: [Int] = [1, 1, 1], slowStart: Duration = .zero) -> BackendPool {
        let members = weights.enumerated().map { index, weight in
            BackendPool.Member(id: BackendID(index), name: "b\(index)", address: SocketAddress(numericHost: "10.0.0.\(index + 1)", port: 80)!,
                               weight: weight, maxConnections: 0)
        }
        return BackendPool(name: "test", members: members, algorithm: algorithm,
                           health: HealthPolicy(failThreshold: 3, failTimeout: .seconds(10), slowStart: slowStart))
    }

    private func picks(_ count: Int, _ pool: BackendPool, now: Int64) -> [Int] {
        let strategy = pool.algorithm.makeStrategy(for: pool)
        var counts = Array(repeating: 0, count: pool.count)
        for index in 0..<count {
            var candidates = Candidates(pool: pool, table: table, clientKey: UInt64(index) &* 0x9E37_79B9_7F4A_7C15, now: now)
            if let member = strategy.select(&candidates, random: &random) { counts[member] += 1 }
        }
        return counts
    }

    func testDrainedAndMaintainedBackendsGetNoNewConnectionsFromAnyStrategy() {
        for algorithm in [BalanceAlgorithm.weightedRandom, .roundRobin, .leastConnections, .powerOfTwoChoices, .sourceHash] {
            setUp()
            let pool = pool(algorithm)
            table.health(of: BackendID(0)).setAdminState(.drain, now: 1)
            table.health(of: BackendID(2)).setAdminState(.maint, now: 1)
            XCTAssertEqual(picks(600, pool, now: 10), [0, 600, 0], "\(algorithm)")
            table.health(of: BackendID(0)).setAdminState(.ready, now: 20)
            XCTAssertGreaterThan(picks(600, pool, now: 30)[0], 100, "\(algorithm): ready again")
        }
    }

    func testSlowStartRampsAComebackLinearlyForEveryWeightedStrategy() {
        // A tenth of the way the ramping backend weighs 0.1 against 1: a share of 0.1/1.1; half way, 0.5/1.5.
        // p2c draws both of a pair of two and keeps the ramping one with probability 0.1 (0.5), then prefers
        // the first drawn of two idle backends: a share of 0.1/2 (0.5/2), lower still.
        let expected: [BalanceAlgorithm: (early: Double, half: Double)] = [
            .weightedRandom: (0.091, 0.333), .roundRobin: (0.091, 0.333), .powerOfTwoChoices: (0.05, 0.25),
        ]
        for (algorithm, share) in expected {
            setUp()
            let pool = pool(algorithm, weights: [1, 1], slowStart: .seconds(10))
            table.health(of: BackendID(1)).startRamp(now: 1_000)
            let early = picks(4000, pool, now: 2_000)
            XCTAssertEqual(Double(early[1]) / 4000, share.early, accuracy: 0.02, "\(algorithm): \(early)")
            let half = picks(4000, pool, now: 6_000)
            XCTAssertEqual(Double(half[1]) / 4000, share.half, accuracy: 0.03, "\(algorithm): \(half)")
            let done = picks(4000, pool, now: 11_000)
            XCTAssertEqual(Double(done[1]) / 4000, 0.5, accuracy: 0.04, "\(algorithm): \(done)")
        }
    }

    func testEffectiveWeightFollowsTheRampAndIsFullWithoutSlowStart() {
        let ramped = pool(.roundRobin, weights: [4], slowStart: .seconds(2))
        table.health(of: BackendID(0)).startRamp(now: 1_000)
        XCTAssertEqual(ramped.effectiveWeight(of: 0, table: table, now: 1_500), 1.0, accuracy: 0.01)
        XCTAssertEqual(ramped.effectiveWeight(of: 0, table: table, now: 3_000), 4.0)
        XCTAssertEqual(pool(.roundRobin, weights: [4]).effectiveWeight(of: 0, table: table, now: 1_500), 4.0, "no slow start: full at once")
        XCTAssertEqual(SlowStart.weight(full: 1024, rampStart: 0, now: 5, duration: 100), 1024, "never came back: full")
        XCTAssertEqual(SlowStart.weight(full: 1024, rampStart: 10, now: 5, duration: 100), 1, "a ramp started after the pick's clock read")
    }

    func testComingBackUpStartsTheRampAndLeavingMaintenanceToo() {
        let health = table.health(of: BackendID(3))
        let policy = HealthPolicy(failThreshold: 1, failTimeout: .seconds(1), checks: HealthChecks(interval: .seconds(1), timeout: .seconds(1), rise: 1, fall: 1))
        _ = health.recordCheck(passed: false, policy: policy, now: 100)
        XCTAssertEqual(health.rampStart, 0)
        _ = health.recordCheck(passed: true, policy: policy, now: 200)
        XCTAssertEqual(health.rampStart, 200)
        health.setAdminState(.maint, now: 300)
        XCTAssertEqual(health.displayState, "maint")
        health.setAdminState(.ready, now: 400)
        XCTAssertEqual(health.rampStart, 400)
        XCTAssertEqual(health.displayState, "up")
    }
}
