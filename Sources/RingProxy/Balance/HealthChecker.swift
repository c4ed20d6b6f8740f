import CURing
import Glibc
import Logging

/// Active health checks: every `interval`, a probe of each target (connect; or connect, send, and read until
/// an expected answer), bounded by `timeout`, all driven by one small io_uring on a thread of its own (no
/// thread, and no blocking call, per check). `rise` consecutive passes bring a down backend up; `fall`
/// consecutive failures take an up one down. Backends in maintenance are not checked.
///
/// It knows targets, not plans: the control plane hands it the list to check (`update`).
final class HealthChecker: @unchecked Sendable {
    private let mailbox: HealthTargetMailbox
    private var thread = pthread_t()

    init?(targets: [HealthTarget], table: BackendTable, logger: Logger) {
        guard let mailbox = HealthTargetMailbox(targets) else {
            logger.error("cannot start the health checker: no eventfd")
            return nil
        }
        self.mailbox = mailbox
        let started = WorkerThread.start(name: "ringproxy-health", cpu: nil) {
            do throws(RingError) {
                var loop = try HealthCheckLoop(mailbox: mailbox, table: table, logger: logger)
                loop.run()
            } catch {
                logger.error("health checks are off: \(RingAvailability.explain(error))")
            }
        }
        guard case .success(let thread) = started else { return nil }
        self.thread = thread
    }

    /// Checks `targets` from now on (an empty list pauses the checker).
    func update(_ targets: [HealthTarget]) { mailbox.post(targets) }

    func stop() {
        mailbox.stop()
        WorkerThread.join(thread)
    }
}

/// The newest target list for the checker's thread, and an eventfd (read on its ring) that says there is one.
private final class HealthTargetMailbox: @unchecked Sendable {
    let eventFD: Int32
    private let state: Locked<(targets: [HealthTarget]?, stopping: Bool)>

    init?(_ targets: [HealthTarget]) {
        eventFD = eventfd(0, Int32(EFD_CLOEXEC))
        guard eventFD >= 0 else { return nil }
        state = Locked((targets, false))
    }

    deinit { Glibc.close(eventFD) }

    func post(_ targets: [HealthTarget]) {
        state.withLock { $0.targets = targets }
        wake()
    }

    func stop() {
        state.withLock { $0.stopping = true }
        wake()
    }

    /// The list posted since the last call (nil when none), and whether the checker must stop.
    func take() -> (targets: [HealthTarget]?, stopping: Bool) {
        state.withLock { state in
            defer { state.targets = nil }
            return state
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(eventFD, &one, 8)
    }
}

/// The checker's ring and the checks in flight.
private struct HealthCheckLoop: ~Copyable {
    /// One check in flight: its socket, where it stands, and the memory its operations use.
    private struct RunningCheck {
        enum Phase { case connecting, sending, receiving }
        let index: Int
        let fd: Int32
        let epoch: UInt32
        let memory: CheckMemory
        var phase = Phase.connecting
        var sent = 0
        var received = 0
        var timedOut = false
    }

    private var ring: IORing
    private let mailbox: HealthTargetMailbox
    private let table: BackendTable
    private let logger: Logger
    private var targets: [HealthTarget] = []
    private var memory: CheckMemory
    /// Targets (of the current list) with a check in flight.
    private var busy = Set<Int>()
    /// The checks in flight, by the user data of their operations (checks of an older list too).
    private var running: [UInt64: RunningCheck] = [:]
    /// Bumped with each list, so that a check of an older list is not counted against the new targets.
    private var epoch: UInt32 = 0
    /// Numbers each check, so that the deadline of a finished check never cancels the next one.
    private var sequence: UInt32 = 0
    private let completions = FixedArray(repeating: Completion(userData: UserData(rawValue: 0), result: 0, flags: 0), count: 64)
    private let interval = KernelTimeout(.seconds(1))
    private let timeout = KernelTimeout(.seconds(1))
    private let controlBuffer = FixedArray<UInt64>(repeating: 0, count: 1)
    private var terminating = false

    init(mailbox: HealthTargetMailbox, table: BackendTable, logger: Logger) throws(RingError) {
        ring = try IORing(entries: 256)
        self.mailbox = mailbox
        self.table = table
        self.logger = logger
        memory = CheckMemory([])
        adopt(mailbox.take().targets ?? [])
    }

    deinit {
        for check in running.values { Glibc.close(check.fd) }
    }

    mutating func run() {
        ring.read(mailbox.eventFD, into: controlBuffer, userData: .ringWide(.control))
        ring.timeout(interval, userData: .ringWide(.tick))
        while !terminating {
            ring.submitAndWait(1)
            let count = ring.reapCompletions(into: completions)
            for index in 0..<count { handle(completions[index]) }
        }
        finishRunningChecks()
    }

    /// Stopping: cancels the checks in flight and waits for their operations to end, so that none outlives
    /// the memory it reads or writes (each one's deadline, already armed, bounds the wait in any case).
    private mutating func finishRunningChecks() {
        for check in running.values { ring.cancelAll(on: check.fd, userData: .ringWide(.cancel)) }
        while !running.isEmpty {
            ring.submitAndWait(1)
            let count = ring.reapCompletions(into: completions)
            for index in 0..<count {
                let completion = completions[index]
                guard completion.userData.kind == .check, !completion.userData.isDeadline,
                      let check = running[completion.userData.rawValue] else { continue }
                end(completion.userData.rawValue, check)
            }
        }
    }

    private mutating func handle(_ completion: Completion) {
        switch completion.userData.kind {
        case .control:
            let (newTargets, stopping) = mailbox.take()
            if stopping { terminating = true; return }
            ring.read(mailbox.eventFD, into: controlBuffer, userData: .ringWide(.control))
            if let newTargets, newTargets != targets { adopt(newTargets) }
        case .tick:
            ring.timeout(interval, userData: .ringWide(.tick))
            startRound()
        case .check where completion.userData.isDeadline:
            // The check's deadline passed: if it still runs, cancel what it waits for (it then fails).
            let key = completion.userData.checkOperation.rawValue
            guard running[key] != nil else { return }
            running[key]?.timedOut = true
            ring.cancelAll(on: running[key]!.fd, userData: .ringWide(.cancel))
        case .check:
            advance(completion)
        default:
            break
        }
    }

    private mutating func adopt(_ newTargets: [HealthTarget]) {
        targets = newTargets
        epoch = (epoch &+ 1) & UserData.generationMask
        busy = []
        // Checks of the old list run to their end (their deadline bounds them) and are not counted; each keeps
        // the old memory alive until its last completion, so the kernel never reads or writes freed memory.
        memory = CheckMemory(newTargets)
        // One round per shortest interval; every target shares the check timeout of the first.
        if let shortest = newTargets.map(\.checks.interval).min(), let first = newTargets.first {
            interval.set(shortest)
            timeout.set(first.checks.timeout)
        } else {
            interval.set(.seconds(1))
        }
    }

    /// One check per target, except those whose previous check is still in flight and those in maintenance.
    private mutating func startRound() {
        for (index, target) in targets.enumerated() where !busy.contains(index) {
            guard table.health(of: target.id).adminState != .maint else { continue }
            let fd = Socket.openStream(family: target.address.family)
            guard fd >= 0 else { continue }
            sequence = (sequence &+ 1) & UserData.generationMask
            let key = UserData.check(target: UInt32(index), number: sequence)
            running[key.rawValue] = RunningCheck(index: index, fd: fd, epoch: epoch, memory: memory)
            busy.insert(index)
            ring.connect(fd, to: memory.addresses, at: index, timeout: timeout,
                         userData: key, timeoutUserData: .check(.connectTimeout, target: UInt32(index), number: sequence))
            ring.timeout(timeout, userData: .check(target: UInt32(index), number: sequence, deadline: true))
        }
    }

    /// The next step of a check whose operation completed: send the request, read the answer, or decide.
    private mutating func advance(_ completion: Completion) {
        let key = completion.userData.rawValue
        guard var check = running[key] else { return }
        let result = completion.result
        guard check.epoch == epoch else { return end(key, check) }
        let probe = targets[check.index].checks.probe
        if result < 0 {
            return decide(key, check, passed: false, reason: check.timedOut || result == -ECANCELED ? "timed out" : Self.describe(errno: -result))
        }
        switch check.phase {
        case .connecting:
            if case .connect = probe { return decide(key, check, passed: true, reason: "") }
            check.phase = .sending
        case .sending:
            check.sent += Int(result)
        case .receiving:
            check.received += Int(result)
            let area = check.memory.receiveArea(check.index)
            let closed = result == 0 || check.received >= area.capacity
            switch probe.verdict(on: check.memory.received(check.index, count: check.received), closed: closed) {
            case .pass: return decide(key, check, passed: true, reason: "")
            case .fail(let reason): return decide(key, check, passed: false, reason: reason)
            case .needMore: break
            }
        }
        let request = check.memory.request(check.index)
        if check.phase == .sending, check.sent < request.count {
            ring.send(to: check.fd, from: check.memory.bytes, offset: request.offset + check.sent,
                      length: UInt32(request.count - check.sent), userData: completion.userData)
        } else {
            check.phase = .receiving
            let area = check.memory.receiveArea(check.index)
            ring.read(check.fd, into: check.memory.bytes, offset: area.offset + check.received,
                      length: UInt32(area.capacity - check.received), userData: completion.userData)
        }
        running[key] = check
    }

    /// Records the outcome of a check of the current list (unless its backend went into maintenance meanwhile).
    private mutating func decide(_ key: UInt64, _ check: RunningCheck, passed: Bool, reason: String) {
        end(key, check)
        busy.remove(check.index)
        let target = targets[check.index]
        let health = table.health(of: target.id)
        guard health.adminState != .maint,
              let change = health.recordCheck(passed: passed, policy: target.policy, now: monotonicMilliseconds())
        else { return }
        logger.info("backend \(change.to)", metadata: [
            "backend": "\(target.name)", "reason": "\(change.reason)\(reason.isEmpty ? "" : ": \(reason)")",
        ])
    }

    private mutating func end(_ key: UInt64, _ check: RunningCheck) {
        running.removeValue(forKey: key)
        Glibc.close(check.fd)
    }

    private static func describe(errno: Int32) -> String { "\(String(cString: strerror(errno))) (\(errnoName(errno)))" }
}
