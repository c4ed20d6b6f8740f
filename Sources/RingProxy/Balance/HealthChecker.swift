import CURing
import Glibc
import Logging

/// Active health checks: every `interval`, a TCP connect to each backend, bounded by `timeout`, all driven
/// by one small io_uring on a thread of its own (no thread, and no blocking call, per check). `rise`
/// consecutive passes bring a down backend up; `fall` consecutive failures take an up one down.
final class HealthChecker: @unchecked Sendable {
    private let control: ControlChannel
    private var thread = pthread_t()

    init?(plan: RuntimePlan, table: BackendTable, logger: Logger) {
        guard let control = try? ControlChannel(plan: plan) else {
            logger.error("cannot start the health checker: no eventfd")
            return nil
        }
        self.control = control
        let started = WorkerThread.start(name: "ringproxy-health", cpu: nil) {
            do throws(RingError) {
                var loop = try HealthCheckLoop(control: control, table: table, logger: logger)
                loop.run()
            } catch {
                logger.error("health checks are off: \(RingAvailability.explain(error))")
            }
        }
        guard case .success(let thread) = started else { return nil }
        self.thread = thread
    }

    func publish(_ plan: RuntimePlan) { control.publish(plan) }

    func stop() {
        control.enter(.terminating)
        WorkerThread.join(thread)
    }
}

/// The checker's ring and the checks in flight.
private struct HealthCheckLoop: ~Copyable {
    private struct Target {
        let id: BackendID
        let name: String
        let address: SocketAddress
    }

    private var ring: IORing
    private let control: ControlChannel
    private let table: BackendTable
    private let logger: Logger
    private var plan: RuntimePlan
    private var targets: [Target] = []
    /// The targets' addresses, where their connects point until submitted.
    private var addresses = FixedArray<SocketAddress>([])
    /// Targets (of the current plan) with a check in flight.
    private var busy = Set<Int>()
    /// The socket of each check in flight, by the user data of its connect (checks of an older plan too).
    private var inFlight: [UInt64: Int32] = [:]
    /// Bumped with each plan, so that a check of an older plan is not counted against the new targets.
    private var epoch: UInt32 = 0
    private let completions = FixedArray(repeating: Completion(userData: UserData(rawValue: 0), result: 0, flags: 0), count: 64)
    private let interval = KernelTimeout(.zero)
    private let timeout = KernelTimeout(.zero)
    private let controlBuffer = FixedArray<UInt64>(repeating: 0, count: 1)
    private var terminating = false

    init(control: ControlChannel, table: BackendTable, logger: Logger) throws(RingError) {
        ring = try IORing(entries: 256)
        self.control = control
        self.table = table
        self.logger = logger
        plan = control.latest
        adopt(plan)
    }

    deinit {
        for fd in inFlight.values { Glibc.close(fd) }
    }

    mutating func run() {
        ring.read(control.eventFD, into: controlBuffer, userData: UserData(.control, slot: 0))
        armTick()
        while !terminating {
            ring.submitAndWait(1)
            let count = ring.reapCompletions(into: completions)
            for index in 0..<count { handle(completions[index]) }
        }
    }

    private mutating func handle(_ completion: Completion) {
        switch completion.userData.kind {
        case .control:
            let (plans, phase) = control.take()
            if phase == .terminating { terminating = true; return }
            ring.read(control.eventFD, into: controlBuffer, userData: UserData(.control, slot: 0))
            // The checker owns nothing a plan hands over: the newest one is all it needs.
            if let newPlan = plans.last, newPlan.generation != plan.generation { adopt(newPlan) }
            control.acknowledge(plan.generation)
        case .tick:
            armTick()
            startRound()
        case .check:
            finish(completion)
        default:
            break
        }
    }

    private mutating func adopt(_ newPlan: RuntimePlan) {
        plan = newPlan
        epoch = (epoch &+ 1) & UserData.generationMask
        busy = []
        var seen = Set<BackendID>()
        targets = newPlan.listeners.flatMap { listener in
            listener.pools.flatMap { pool, prefix in
                pool.members.compactMap { member in
                    seen.insert(member.id).inserted ? Target(id: member.id, name: "\(prefix)/\(member.name)", address: member.address) : nil
                }
            }
        }
        // Connects of the old plan prepared in this loop turn (a round started by a tick reaped in the same
        // batch as this plan) still point at the old addresses: submitting them now, on this ring without a
        // polling thread, makes the kernel copy those addresses before they are freed. Older checks in flight
        // were submitted, and copied, already.
        ring.submit()
        addresses = FixedArray(targets.map(\.address))
        if let checks = newPlan.config.health.checks {
            interval.set(checks.interval)
            timeout.set(checks.timeout)
        }
    }

    private mutating func armTick() {
        guard plan.config.health.checks != nil else {
            // No checks configured: look again in a second (a reload may turn them on).
            interval.set(.seconds(1))
            ring.timeout(interval, userData: UserData(.tick, slot: 0))
            return
        }
        ring.timeout(interval, userData: UserData(.tick, slot: 0))
    }

    /// One check per backend, except those whose previous check is still in flight.
    private mutating func startRound() {
        guard plan.config.health.checks != nil else { return }
        for (index, target) in targets.enumerated() where !busy.contains(index) {
            let fd = Socket.openStream(family: target.address.family)
            guard fd >= 0 else { continue }
            let key = UserData(.check, slot: UInt32(index), generation: epoch)
            inFlight[key.rawValue] = fd
            busy.insert(index)
            ring.connect(
                fd, to: addresses, at: index,
                timeout: timeout, userData: key, timeoutUserData: UserData(.connectTimeout, slot: UInt32(index)))
        }
    }

    private mutating func finish(_ completion: Completion) {
        guard let fd = inFlight.removeValue(forKey: completion.userData.rawValue) else { return }
        Glibc.close(fd)
        let index = Int(completion.userData.slot)
        guard completion.userData.generation == epoch, plan.config.health.checks != nil else { return }
        busy.remove(index)
        let target = targets[index]
        let passed = completion.result == 0
        if let change = table.health(of: target.id).recordCheck(passed: passed, policy: plan.config.health, now: monotonicMilliseconds()) {
            let error = passed ? "" : completion.result == -ECANCELED ? "timed out" : Worker.describe(errno: -completion.result)
            logger.info("backend \(change.to)", metadata: [
                "backend": "\(target.name)", "reason": "\(change.reason)\(error.isEmpty ? "" : ": \(error)")",
            ])
        }
    }
}
