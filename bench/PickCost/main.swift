// pick-cost: what one backend pick costs, per balancing algorithm, for pools of 2, 16 and 256 backends and
// load tables of 1, 2 and 8 worker shards (a pick that reads loads sums every shard). Single-threaded, on a
// table with random live loads, timed over a million picks, best of five runs. Prints a Markdown table.
//
//   swift run -c release pick-cost            (make bench-picks)
import Glibc
import RingProxy

let backendCounts = [2, 16, 256]
let workerCounts = [1, 2, 8]
let picks = 1_000_000
func nanosecondsPerPick(_ algorithm: BalanceAlgorithm, backends: Int, workers: Int) -> Double {
    var random = FastRandom(seed: 1)
    let table = BackendTable(capacity: backends, shards: workers)
    let members = (0..<backends).map { index in
        BackendPool.Member(
            id: BackendID(index), name: "10.0.\(index / 256).\(index % 256):80",
            address: SocketAddress(numericHost: "10.0.\(index / 256).\(index % 256)", port: 80)!,
            weight: 1 + index % 3, maxConnections: 0)
    }
    let pool = BackendPool(name: "bench", members: members, algorithm: algorithm,
                           health: HealthPolicy(failThreshold: 3, failTimeout: .seconds(10)))
    for worker in 0..<workers {
        for index in 0..<backends { table.shard(worker).add(random.below(100), to: .active, backend: BackendID(index)) }
    }
    let strategy = algorithm.makeStrategy(for: pool)
    var best = Double.infinity
    var checksum = 0
    for _ in 0..<5 {
        let clock = ContinuousClock()
        let started = clock.now
        for pick in 0..<picks {
            var candidates = Candidates(pool: pool, table: table, clientKey: UInt64(pick) &* 0x9E37_79B9_7F4A_7C15, now: 0)
            checksum &+= strategy.select(&candidates, random: &random) ?? 0
        }
        let elapsed = clock.now - started
        best = min(best, Double(elapsed.components.attoseconds) / 1e9 + Double(elapsed.components.seconds) * 1e9)
    }
    precondition(checksum != -1)
    return best / Double(picks)
}

var header = "| algorithm |"
var rule = "|---|"
for backends in backendCounts {
    for workers in workerCounts {
        header += " \(backends) b / \(workers) w |"
        rule += "---:|"
    }
}
print("ns per pick (best of 5 x \(picks) picks; b = backends in the pool, w = worker shards in the load table)\n")
print(header)
print(rule)
for algorithm in BalanceAlgorithm.allCases {
    var row = "| \(algorithm.rawValue) |"
    for backends in backendCounts {
        for workers in workerCounts {
            let cost = nanosecondsPerPick(algorithm, backends: backends, workers: workers)
            var text = [CChar](repeating: 0, count: 32)
            _ = withVaList([cost]) { vsnprintf(&text, text.count, "%.1f", $0) }
            row += " \(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) |"
        }
    }
    print(row)
}
