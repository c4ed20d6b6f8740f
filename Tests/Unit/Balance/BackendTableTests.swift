import Glibc
@testable import RingProxy
import XCTest

/// The shared load table and the health state in its row headers.
final class BackendTableTests: XCTestCase {
    func testShardsWrittenByConcurrentWorkersSumExactly() {
        let workers = 4, backends = 3, rounds = 200_000
        let table = BackendTable(capacity: 16, shards: workers)
        let done = Latch(count: workers)
        for worker in 0..<workers {
            let shard = table.shard(worker)
            _ = WorkerThread.start(name: "hammer\(worker)", cpu: nil) {
                for round in 0..<rounds {
                    let backend = BackendID(round % backends)
                    shard.add(1, to: .total, backend: backend)
                    shard.add(2, to: .bytesToBackend, backend: backend)
                    shard.add(round % 2 == 0 ? 1 : -1, to: .active, backend: backend)
                }
                done.arrive()
            }
        }
        // Readers summing while the workers write see partial, never torn, values.
        var lastSeen = 0
        for _ in 0..<1000 {
            let seen = table.sum(.total, backend: BackendID(0))
            XCTAssertGreaterThanOrEqual(seen, lastSeen)
            lastSeen = seen
        }
        done.wait()
        for backend in 0..<backends {
            let expected = workers * (rounds / backends + (backend < rounds % backends ? 1 : 0))
            XCTAssertEqual(table.sum(.total, backend: BackendID(backend)), expected)
            XCTAssertEqual(table.sum(.bytesToBackend, backend: BackendID(backend)), 2 * expected)
        }
        XCTAssertEqual((0..<backends).map { table.sum(.active, backend: BackendID($0)) }.reduce(0, +), 0)
    }

    func testCellsOfDifferentWorkersNeverShareACacheLine() {
        let table = BackendTable(capacity: 4, shards: 3)
        let first = table.cell(BackendID(1), shard: 0).address
        let second = table.cell(BackendID(1), shard: 1).address
        XCTAssertEqual(second - first, 128)
        XCTAssertEqual(first % 128, 0)
    }

    func testConsecutiveConnectFailuresMarkDownAndOneTrialDecides() {
        let table = BackendTable(capacity: 4, shards: 1)
        let policy = HealthPolicy(failThreshold: 3, failTimeout: .seconds(10))
        let health = table.health(of: BackendID(2))
        let now: Int64 = 1_000_000
        XCTAssertNil(health.recordConnectFailure(now: now, wasTrial: false, policy: policy))
        XCTAssertNil(health.recordConnectFailure(now: now, wasTrial: false, policy: policy))
        XCTAssertEqual(health.recordConnectFailure(now: now, wasTrial: false, policy: policy),
                       HealthTransition(to: .down, reason: "3 consecutive connect failures"))
        XCTAssertFalse(health.isAvailable(now: now + 9_999, activeChecks: policy.checks != nil))
        var trial = false
        XCTAssertFalse(health.claim(now: now + 9_999, activeChecks: policy.checks != nil, isTrial: &trial))
        XCTAssertTrue(health.claim(now: now + 10_000, activeChecks: policy.checks != nil, isTrial: &trial))
        XCTAssertTrue(trial, "the first connection after the timeout is the trial")
        XCTAssertFalse(health.claim(now: now + 10_000, activeChecks: policy.checks != nil, isTrial: &trial), "only one trial at a time")
        XCTAssertEqual(health.recordConnectFailure(now: now + 10_050, wasTrial: true, policy: policy),
                       HealthTransition(to: .down, reason: "trial connection failed"))
        XCTAssertFalse(health.isAvailable(now: now + 20_000, activeChecks: policy.checks != nil), "down for another timeout")
        XCTAssertTrue(health.claim(now: now + 20_050, activeChecks: policy.checks != nil, isTrial: &trial))
        XCTAssertEqual(health.recordConnectSuccess(wasTrial: true, now: now + 20_060),
                       HealthTransition(to: .up, reason: "trial connection succeeded"))
        XCTAssertEqual(health.state, .up)
        XCTAssertEqual(health.consecutiveFailures, 0)
    }

    func testASuccessResetsTheFailureCount() {
        let table = BackendTable(capacity: 1, shards: 1)
        let policy = HealthPolicy(failThreshold: 2, failTimeout: .seconds(1))
        let health = table.health(of: BackendID(0))
        _ = health.recordConnectFailure(now: 0, wasTrial: false, policy: policy)
        _ = health.recordConnectSuccess(wasTrial: false, now: 0)
        XCTAssertNil(health.recordConnectFailure(now: 0, wasTrial: false, policy: policy), "failures must be consecutive")
        XCTAssertEqual(health.state, .up)
    }

    func testAbandonedTrialLetsTheNextConnectionTry() {
        let table = BackendTable(capacity: 1, shards: 1)
        let policy = HealthPolicy(failThreshold: 1, failTimeout: .seconds(1))
        let health = table.health(of: BackendID(0))
        _ = health.recordConnectFailure(now: 0, wasTrial: false, policy: policy)
        var trial = false
        XCTAssertTrue(health.claim(now: 1000, activeChecks: policy.checks != nil, isTrial: &trial))
        health.abandonTrial(now: 1001)
        XCTAssertTrue(health.claim(now: 1001, activeChecks: policy.checks != nil, isTrial: &trial))
        XCTAssertTrue(trial)
    }

    func testActiveChecksFallThenRise() {
        let table = BackendTable(capacity: 1, shards: 1)
        let checks = HealthChecks(interval: .seconds(1), timeout: .seconds(1), rise: 2, fall: 3)
        let policy = HealthPolicy(failThreshold: 3, failTimeout: .seconds(1), checks: checks)
        let health = table.health(of: BackendID(0))
        XCTAssertNil(health.recordCheck(passed: false, policy: policy, now: 0))
        XCTAssertNil(health.recordCheck(passed: false, policy: policy, now: 0))
        XCTAssertEqual(health.recordCheck(passed: false, policy: policy, now: 0),
                       HealthTransition(to: .down, reason: "3 consecutive health checks failed"))
        XCTAssertFalse(health.isAvailable(now: .max - 1, activeChecks: policy.checks != nil), "with checks, only checks bring it back")
        XCTAssertNil(health.recordCheck(passed: true, policy: policy, now: 0))
        XCTAssertEqual(health.recordCheck(passed: true, policy: policy, now: 0),
                       HealthTransition(to: .up, reason: "2 consecutive health checks passed"))
        XCTAssertTrue(health.isAvailable(now: 0, activeChecks: policy.checks != nil))
    }

    func testReservationsNeverExceedTheLimitUnderContention() {
        let table = BackendTable(capacity: 1, shards: 1)
        let health = table.health(of: BackendID(0))
        let threads = 4
        let done = Latch(count: threads)
        for index in 0..<threads {
            _ = WorkerThread.start(name: "reserve\(index)", cpu: nil) {
                for _ in 0..<50_000 where health.reserve(limit: 3) {
                    precondition(health.reserved <= 3)
                    health.unreserve()
                }
                done.arrive()
            }
        }
        done.wait()
        XCTAssertEqual(health.reserved, 0)
    }
}
