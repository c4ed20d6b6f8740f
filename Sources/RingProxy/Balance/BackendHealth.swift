import CURing
import Glibc

/// Whether a backend takes new connections.
public enum HealthState: Int, Sendable, CustomStringConvertible {
    case up = 0
    /// Marked down by failures; passive health lets one trial connection through after `failTimeout`.
    case down = 1
    /// Down, with one trial connection in flight that decides.
    case trial = 2

    public var description: String {
        switch self {
        case .up: "up"
        case .down: "down"
        case .trial: "trial"
        }
    }
}

/// What the operator set a backend to at runtime (`PUT /backends/...`, `ringproxy ctl`), apart from its health.
public enum BackendAdminState: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// Takes connections as its health allows.
    case ready = 0
    /// No new connections; open ones finish.
    case drain = 1
    /// No new connections, and active health checks paused.
    case maint = 2

    public var description: String {
        switch self {
        case .ready: "ready"
        case .drain: "drain"
        case .maint: "maint"
        }
    }

    public init?(name: String) {
        guard let state = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = state
    }
}

/// A change of health state, for the log line that reports it.
public struct HealthTransition: Sendable, Equatable {
    public let to: HealthState
    public let reason: String
}

/// One backend's shared health words in the `BackendTable` header: every worker and the health checker read
/// and update them with atomics, and only on connect outcomes and checks, never per packet.
public struct BackendHealth: Sendable {
    private let words: SharedWords

    init(words: SharedWords) { self.words = words }

    public var state: HealthState { HealthState(rawValue: words.loadAcquire(.healthState)) ?? .up }
    public var consecutiveFailures: Int { words.load(.consecutiveFailures) }
    /// Times the state changed.
    public var stateChanges: Int { words.load(.stateChanges) }
    /// Connections holding a slot of the backend's `max_connections`.
    public var reserved: Int { words.load(.reserved) }

    public var adminState: BackendAdminState { BackendAdminState(rawValue: words.load(.adminState)) ?? .ready }

    /// Whether the operator lets the backend take new connections (not drained, not in maintenance).
    @inline(__always)
    public var isAdminReady: Bool { words.load(.adminState) == BackendAdminState.ready.rawValue }

    /// When the backend last came up or joined (monotonic ms; 0 when it has been up since the start).
    @inline(__always)
    public var rampStart: Int64 { Int64(words.load(.rampStart)) }

    /// The state shown to operators: the operator's drain or maintenance first, else up or down (a trial
    /// is down until it succeeds).
    public var displayState: String {
        switch adminState {
        case .drain, .maint: "\(adminState)"
        case .ready: state == .up ? "up" : "down"
        }
    }

    /// Sets the operator's state; leaving drain or maintenance starts the slow-start ramp as a comeback does.
    public func setAdminState(_ new: BackendAdminState, now: Int64) {
        let old = words.load(.adminState)
        guard old != new.rawValue else { return }
        if new == .ready { startRamp(now: now) }
        words.storeRelease(at: .adminState, new.rawValue)
    }

    /// Starts the slow-start ramp now (the backend came up, joined, or left maintenance).
    public func startRamp(now: Int64) { words.store(at: .rampStart, Int(max(1, now))) }

    /// Whether a new connection may go to this backend now (without claiming anything). `activeChecks`: the
    /// pool's health checks, when on, alone bring a down backend back (a Bool, not the policy: the policy holds
    /// strings and arrays, whose reference counting would cost every pick).
    @inline(__always)
    public func isAvailable(now: Int64, activeChecks: Bool) -> Bool {
        guard isAdminReady else { return false }
        return switch state {
        case .up: true
        case .down: !activeChecks && now >= Int64(words.load(.downUntil))
        case .trial: false
        }
    }

    /// Takes the backend for one connection: true when it is up, or when this connection becomes the trial
    /// of a down backend whose timeout has passed (`isTrial` then tells the caller to report the outcome).
    @inline(__always)
    public func claim(now: Int64, activeChecks: Bool, isTrial: inout Bool) -> Bool {
        guard isAdminReady else { return false }
        switch state {
        case .up:
            isTrial = false
            return true
        case .down:
            guard !activeChecks, now >= Int64(words.load(.downUntil)) else { return false }
            isTrial = words.compareExchange(.healthState, HealthState.down.rawValue, HealthState.trial.rawValue)
            return isTrial
        case .trial:
            return false
        }
    }

    /// A connect to the backend failed. Returns the transition when this failure changed the state.
    public func recordConnectFailure(now: Int64, wasTrial: Bool, policy: HealthPolicy) -> HealthTransition? {
        let failures = words.fetchAdd(at: .consecutiveFailures, 1) + 1
        if wasTrial {
            markDown(from: .trial, until: now + policy.failTimeout.milliseconds, now: now)
            return HealthTransition(to: .down, reason: "trial connection failed")
        }
        guard policy.failThreshold > 0, failures >= policy.failThreshold,
              markDown(from: .up, until: now + policy.failTimeout.milliseconds, now: now)
        else { return nil }
        return HealthTransition(to: .down, reason: "\(failures) consecutive connect failures")
    }

    /// A connect to the backend succeeded.
    public func recordConnectSuccess(wasTrial: Bool, now: Int64) -> HealthTransition? {
        if words.load(.consecutiveFailures) != 0 { words.store(at: .consecutiveFailures, 0) }
        guard wasTrial, change(from: .trial, to: .up, now: now) else { return nil }
        return HealthTransition(to: .up, reason: "trial connection succeeded")
    }

    /// The trial connection ended before its connect did (the proxy is stopping): let a later one try.
    public func abandonTrial(now: Int64) {
        markDown(from: .trial, until: now, now: now)
    }

    /// The outcome of one active check. Returns the transition when it changed the state.
    public func recordCheck(passed: Bool, policy: HealthPolicy, now: Int64) -> HealthTransition? {
        guard let checks = policy.checks else { return nil }
        if passed {
            words.store(at: .checkFailures, 0)
            let passes = words.fetchAdd(at: .checkSuccesses, 1) + 1
            guard passes >= checks.rise, state != .up else { return nil }
            words.store(at: .consecutiveFailures, 0)
            guard change(from: state, to: .up, now: now) else { return nil }
            return HealthTransition(to: .up, reason: "\(passes) consecutive health checks passed")
        }
        words.store(at: .checkSuccesses, 0)
        let failures = words.fetchAdd(at: .checkFailures, 1) + 1
        // While checks run, only they bring the backend back and the deadline is not read; it is finite all
        // the same, so that a reload turning checks off leaves the backend to passive health's trial.
        guard failures >= checks.fall, markDown(from: .up, until: now + policy.failTimeout.milliseconds, now: now) else { return nil }
        return HealthTransition(to: .down, reason: "\(failures) consecutive health checks failed")
    }

    /// Holds one of the backend's `limit` connection slots; false when all are taken.
    @inline(__always)
    public func reserve(limit: Int) -> Bool {
        while true {
            let taken = words.load(.reserved)
            guard taken < limit else { return false }
            if words.compareExchange(.reserved, taken, taken + 1) { return true }
        }
    }

    @inline(__always)
    public func unreserve() { _ = words.fetchAdd(at: .reserved, -1) }

    @discardableResult
    private func markDown(from old: HealthState, until deadline: Int64, now: Int64) -> Bool {
        // The deadline is published before the state, so whoever sees "down" sees its deadline too. Two
        // threads racing here write deadlines a moment apart; either is right.
        words.store(at: .downUntil, Int(deadline))
        return change(from: old, to: .down, now: now)
    }

    private func change(from old: HealthState, to new: HealthState, now: Int64) -> Bool {
        guard words.compareExchange(.healthState, old.rawValue, new.rawValue) else { return false }
        if new == .up { startRamp(now: now) }
        _ = words.fetchAdd(at: .stateChanges, 1)
        words.store(at: .lastChange, Int(now))
        return true
    }
}

/// The header words by name, in the orderings `BackendHealth` uses.
private extension SharedWords {
    @inline(__always) func load(_ word: BackendTable.HeaderWord) -> Int { load(word.rawValue) }
    @inline(__always) func loadAcquire(_ word: BackendTable.HeaderWord) -> Int { loadAcquire(word.rawValue) }
    @inline(__always) func store(at word: BackendTable.HeaderWord, _ value: Int) { store(value, at: word.rawValue) }
    @inline(__always) func storeRelease(at word: BackendTable.HeaderWord, _ value: Int) { storeRelease(value, at: word.rawValue) }
    @inline(__always) @discardableResult
    func fetchAdd(at word: BackendTable.HeaderWord, _ delta: Int) -> Int { fetchAdd(delta, at: word.rawValue) }
    @inline(__always)
    func compareExchange(_ word: BackendTable.HeaderWord, _ expected: Int, _ desired: Int) -> Bool {
        compareExchange(at: word.rawValue, expected: expected, desired: desired)
    }
}
