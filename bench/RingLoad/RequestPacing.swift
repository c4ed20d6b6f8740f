/// When each of a thread's connections may start its next request.
///
/// Closed loop: as soon as the connection has room, while requests and time remain. Open loop: at fixed
/// times from `begin(at:)`: the thread's requests are due one `interval` apart and dealt to its connections
/// in turn, so connection `j`'s request `k` is the thread's request `j + k * connections`.
struct RequestPacing {
    private let connections: Int
    private let deadline: UInt64
    /// Closed loop: requests not yet started. Open loop: requests to schedule.
    private var budget: Int
    /// Open loop: nanoseconds between two requests of the thread.
    private let interval: Double?
    private var schedule: (start: UInt64, total: Int, due: Int)?

    init(connections: Int, requests: Int?, deadline: UInt64, rate: Double?) {
        self.connections = connections
        self.deadline = deadline
        budget = requests ?? .max
        interval = rate.map { 1e9 / $0 }
    }

    var isOpenLoop: Bool { interval != nil }

    /// The time to measure the latency of `connection`'s request number `index` from, if it may start now.
    mutating func nextStart(connection: Int, index: Int, now: UInt64) -> UInt64? {
        guard let interval else {
            guard now < deadline, budget > 0 else { return nil }
            budget -= 1
            return now
        }
        guard let schedule, index < dueCount(connection, of: schedule.due) else { return nil }
        return schedule.start + UInt64(Double(connection + index * connections) * interval)
    }

    /// Whether `connection` may start more requests after its first `index`; when not, it closes once its
    /// responses are in.
    func hasMore(connection: Int, index: Int, now: UInt64) -> Bool {
        guard isOpenLoop else { return now < deadline && budget > 0 }
        guard let schedule else { return true }
        return index < dueCount(connection, of: schedule.total)
    }

    /// Open loop: the first request is due at `now`, the last before the deadline or the request budget.
    mutating func begin(at now: UInt64) {
        guard let interval else { return }
        let beforeDeadline = deadline == .max ? Int.max : Int((Double(deadline &- min(now, deadline)) / interval).rounded(.up))
        schedule = (now, min(budget, beforeDeadline), 0)
    }

    /// Open loop: the thread's requests that have come due since the last call, and the nanoseconds until
    /// the next is due (nil when none is left).
    mutating func advance(to now: UInt64) -> (due: Range<Int>, nextIn: UInt64?) {
        guard let interval, var schedule else { return (0..<0, nil) }
        let dueNow = min(schedule.total, Int(Double(now - schedule.start) / interval) + 1)
        let newlyDue = schedule.due..<max(schedule.due, dueNow)
        schedule.due = newlyDue.upperBound
        self.schedule = schedule
        guard schedule.due < schedule.total else { return (newlyDue, nil) }
        let next = schedule.start + UInt64(Double(schedule.due) * interval)
        return (newlyDue, max(1, next &- now))
    }

    /// How many of the thread's first `requests` go to `connection`.
    private func dueCount(_ connection: Int, of requests: Int) -> Int {
        requests > connection ? (requests - connection - 1) / connections + 1 : 0
    }
}
