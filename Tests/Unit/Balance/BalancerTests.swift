import Glibc
@testable import RingProxy
import XCTest

/// The balancing strategies against a real load table, no sockets: proportions, preference for idle
/// backends, stickiness, and the fall-through when a backend is down, full or drained.
final class BalancerTests: XCTestCase {
    private var table: BackendTable!
    private var random = FastRandom(seed: 2026)

    override func setUp() {
        table = BackendTable(capacity: 64, shards: 2)
    }

    private func pool(
        weights: [Int], limits: [Int]? = nil, _ algorithm: BalanceAlgorithm,
        health: HealthPolicy = HealthPolicy(failThreshold: 3, failTimeout: .seconds(10)), firstID: Int = 0
    ) -> BackendPool {
        let members = weights.enumerated().map { index, weight in
            BackendPool.Member(
                id: BackendID(firstID + index), name: "10.0.0.\(index + 1):80",
                address: SocketAddress(numericHost: "10.0.0.\(index + 1)", port: 80)!, weight: weight,
                maxConnections: limits?[index] ?? 0)
        }
        return BackendPool(name: "test", members: members, algorithm: algorithm, health: health)
    }

    /// Picks `count` times (each pick a fresh connection, released at once) and counts per member.
    private func picks(_ count: Int, from pool: BackendPool, key: (Int) -> UInt64 = { _ in 0 }) -> [Int] {
        let strategy = pool.algorithm.makeStrategy(for: pool)
        var counts = Array(repeating: 0, count: pool.count)
        for index in 0..<count {
            var candidates = Candidates(pool: pool, table: table, clientKey: key(index))
            guard let member = strategy.select(&candidates, random: &random) else { continue }
            counts[member] += 1
        }
        return counts
    }

    func testWeightedRandomFollowsWeightsWithinTwoPercent() {
        let counts = picks(20_000, from: pool(weights: [1, 3], .weightedRandom))
        XCTAssertEqual(Double(counts[0]) / 20_000, 0.25, accuracy: 0.02, "\(counts)")
        XCTAssertEqual(Double(counts[1]) / 20_000, 0.75, accuracy: 0.02, "\(counts)")
    }

    func testRoundRobinGivesExactProportionsEvenlyInterleaved() {
        let pool = pool(weights: [5, 1, 1], .roundRobin)
        let strategy = pool.algorithm.makeStrategy(for: pool)
        var sequence: [Int] = []
        for _ in 0..<7 {
            var candidates = Candidates(pool: pool, table: table)
            sequence.append(strategy.select(&candidates, random: &random)!)
        }
        XCTAssertEqual(sequence, [0, 0, 1, 0, 2, 0, 0], "nginx's smooth sequence for 5:1:1")
        XCTAssertEqual(picks(6000, from: self.pool(weights: [1, 2, 3], .roundRobin)), [1000, 2000, 3000])
    }

    func testLeastConnectionsSendsNewConnectionsToTheIdleBackend() {
        let pool = pool(weights: [1, 1], .leastConnections)
        table.shard(1).add(50, to: .active, backend: pool.members[0].id)
        XCTAssertEqual(picks(20, from: pool), [0, 20])
    }

    func testLeastConnectionsComparesLoadPerUnitOfWeight() {
        let pool = pool(weights: [1, 4], .leastConnections)
        table.shard(0).add(2, to: .active, backend: pool.members[0].id)  // 2 per unit
        table.shard(1).add(6, to: .active, backend: pool.members[1].id)  // 1.5 per unit
        XCTAssertEqual(picks(5, from: pool), [0, 5])
    }

    func testLeastConnectionsFollowsWeightsWhenEveryBackendIsIdle() {
        XCTAssertEqual(picks(600, from: pool(weights: [1, 2, 3], .leastConnections)), [100, 200, 300])
    }

    func testPowerOfTwoChoicesSendsNewConnectionsToTheIdleBackend() {
        let pool = pool(weights: [1, 1], .powerOfTwoChoices)
        table.shard(0).add(50, to: .active, backend: pool.members[0].id)
        XCTAssertEqual(picks(200, from: pool), [0, 200])
    }

    func testPowerOfTwoChoicesFollowsWeightsWhenLoadsAreEqual() {
        let counts = picks(20_000, from: pool(weights: [1, 3], .powerOfTwoChoices))
        XCTAssertEqual(Double(counts[1]) / 20_000, 0.75, accuracy: 0.03, "\(counts)")
    }

    func testSourceHashKeepsEachClientOnOneBackend() {
        let pool = pool(weights: [1, 1, 1, 1], .sourceHash)
        let key = { (index: Int) in stableHash([10, 1, UInt8(index >> 8), UInt8(index & 0xFF)]) }
        let strategy = pool.algorithm.makeStrategy(for: pool)
        var first: [Int] = []
        for index in 0..<1000 {
            var candidates = Candidates(pool: pool, table: table, clientKey: key(index))
            first.append(strategy.select(&candidates, random: &random)!)
        }
        for index in 0..<1000 {
            var candidates = Candidates(pool: pool, table: table, clientKey: key(index))
            XCTAssertEqual(strategy.select(&candidates, random: &random), first[index])
        }
        XCTAssertTrue(Set(first).count == 4, "every backend gets clients")
    }

    func testSourceHashRemapsAboutOneNthWhenABackendIsAdded() {
        let clients = 20_000
        let key = { (index: Int) in stableHash(Array("client-\(index)".utf8)) }
        let before = assignments(pool(weights: Array(repeating: 1, count: 10), .sourceHash), clients: clients, key: key)
        let after = assignments(pool(weights: Array(repeating: 1, count: 11), .sourceHash), clients: clients, key: key)
        let moved = zip(before, after).filter { $0 != $1 }
        XCTAssertTrue(moved.allSatisfy { $0.1 == 10 }, "a client only moves to the new backend")
        let fraction = Double(moved.count) / Double(clients)
        XCTAssertEqual(fraction, 1.0 / 11, accuracy: 0.03, "moved \(moved.count) of \(clients)")
    }

    private func assignments(_ pool: BackendPool, clients: Int, key: (Int) -> UInt64) -> [Int] {
        let strategy = pool.algorithm.makeStrategy(for: pool)
        return (0..<clients).map { index in
            var candidates = Candidates(pool: pool, table: table, clientKey: key(index))
            return strategy.select(&candidates, random: &random)!
        }
    }

    func testWeightZeroTakesNoNewConnections() {
        for algorithm in BalanceAlgorithm.allCases {
            let counts = picks(300, from: pool(weights: [0, 2, 1], algorithm), key: { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 })
            XCTAssertEqual(counts[0], 0, "\(algorithm): \(counts)")
            XCTAssertEqual(counts.reduce(0, +), 300, "\(algorithm): \(counts)")
        }
    }

    func testDownBackendIsSkippedByEveryAlgorithm() {
        for algorithm in BalanceAlgorithm.allCases {
            setUp()
            let pool = pool(weights: [1, 1, 1], algorithm)
            let health = table.health(of: pool.members[1].id)
            for _ in 0..<3 { _ = health.recordConnectFailure(now: monotonicMilliseconds(), wasTrial: false, policy: pool.health) }
            XCTAssertEqual(health.state, .down)
            let counts = picks(300, from: pool, key: { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 })
            XCTAssertEqual(counts[1], 0, "\(algorithm): \(counts)")
            XCTAssertEqual(counts.reduce(0, +), 300, "\(algorithm): \(counts)")
        }
    }

    func testFullBackendIsSkippedAndNoneIsPickedWhenAllAreFull() {
        let pool = pool(weights: [1, 1], limits: [2, 3], .roundRobin)
        let strategy = pool.algorithm.makeStrategy(for: pool)
        var taken: [Int] = []
        for _ in 0..<6 {
            var candidates = Candidates(pool: pool, table: table)
            if let member = strategy.select(&candidates, random: &random) { taken.append(member) }
        }
        XCTAssertEqual(taken.sorted(), [0, 0, 1, 1, 1], "two slots on the first, three on the second, then none")
        table.health(of: pool.members[0].id).unreserve()
        var candidates = Candidates(pool: pool, table: table)
        XCTAssertEqual(strategy.select(&candidates, random: &random), 0, "a freed slot is taken again")
    }

    func testRetryNeverPicksABackendAlreadyTried() {
        for algorithm in BalanceAlgorithm.allCases {
            let pool = pool(weights: [1, 1, 1], algorithm)
            var tried = BackendSet()
            tried.insert(pool.members[0].id)
            tried.insert(pool.members[2].id)
            for index in 0..<50 {
                var candidates = Candidates(pool: pool, table: table, tried: tried, clientKey: UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
                XCTAssertEqual(pool.algorithm.makeStrategy(for: pool).select(&candidates, random: &random), 1, "\(algorithm)")
            }
            tried.insert(pool.members[1].id)
            var candidates = Candidates(pool: pool, table: table, tried: tried)
            XCTAssertNil(pool.algorithm.makeStrategy(for: pool).select(&candidates, random: &random), "\(algorithm): all tried")
        }
    }
}
