import CURing
import Glibc
import Logging

/// The worker's control: the periodic tick (idle timeouts, accept pauses), and the control channel through
/// which reloads, drains and stops arrive on the ring.
extension Worker {
    mutating func armTick() {
        ring.timeout(tickTimeout, userData: .ringWide(.tick))
    }

    mutating func tickCompleted() {
        armTick()
        acceptPaused = false
        if !awaitingDescriptor.isEmpty { retryAwaitingDescriptor() }
        if !lingering.isEmpty { closeLingering() }
        if routes.isInUse { checkPrereads() }
        // Buffers may have come back without a receive of the starved ones' own noticing.
        if !starved.isEmpty { wakeStarved() }
        wheel.advance()
        // Each expired slot is handled before the next is looked at, and handling one touches no other.
        while let slot = wheel.popExpired(in: table) {
            guard table[slot].tunnel.phase != .closing else { continue }  // closing already: not idle
            counters.add(1, .idleTimeouts)
            handle(slot, .idleTimeout)
        }
    }

    mutating func armControl() {
        ring.read(control.eventFD, into: controlBuffer, userData: .ringWide(.control))
    }

    mutating func controlCompleted() {
        armControl()
        let (published, newPhase) = control.take()
        // Each plan in turn, so that every listening socket a plan bound for this worker is adopted or closed.
        for newPlan in published where newPlan.generation > plan.generation { adopt(newPlan) }
        if newPhase > phase { enter(newPhase) }
        control.acknowledge(plan.generation)
    }

    /// Called once `run` has returned: takes the plans published meanwhile (closing the sockets they bound
    /// for this worker), and tells the control plane that later plans are its own to clean up.
    mutating func stopTakingPlans() {
        for newPlan in control.close() where newPlan.generation > plan.generation { adopt(newPlan) }
        control.acknowledge(plan.generation)
    }

    /// Switches to a reloaded plan: new listeners start accepting, removed ones stop, every pool and timeout
    /// is the new one for new connections. Open connections keep their backend. A worker that no longer
    /// accepts (draining, stopping) closes the sockets the new plan bound for it at once.
    private mutating func adopt(_ newPlan: RuntimePlan) {
        if phase == .running {
            let removed = listeners.filter { old in !newPlan.listeners.contains { $0.id == old.id } }
            listeners = newPlan.listeners.map { listenerPlan in
                listeners.first { $0.id == listenerPlan.id } ?? ListenerState(id: listenerPlan.id, fd: listenerPlan.sockets[index])
            }
            for listener in removed { retire(listener, takeBacklog: false) }
        } else {
            for listener in newPlan.listeners where !plan.listeners.contains(where: { $0.id == listener.id }) {
                Glibc.close(listener.sockets[index])
            }
        }
        // Connections name their listener by its index in the plan: carry them over to the new indices.
        let newRoute: [UInt16] = plan.listeners.map { old in
            newPlan.listeners.firstIndex { $0.id == old.id }.map(UInt16.init) ?? Connection.noListener
        }
        for slot in 0..<table.highWater where table[slot].tunnel.phase != .closed {
            let old = Int(table[slot].listener)
            table[slot].listener = old < newRoute.count ? newRoute[old] : Connection.noListener
        }
        strategies = newPlan.listeners.map { $0.pool.algorithm.makeStrategy(for: $0.pool) }
        adoptRouting(newPlan, previous: plan)
        connectTimeout.set(newPlan.config.connectTimeout)
        wheel.changeTimeout(to: Self.idleTicks(newPlan.config.idleTimeout), in: table)
        plan = newPlan
    }

    /// Draining: stop accepting (serving what already waits in the backlogs) and let connections finish.
    /// Terminating: close every connection now.
    private mutating func enter(_ newPhase: ControlChannel.Phase) {
        phase = newPhase
        let closing = listeners
        for listener in closing { retire(listener, takeBacklog: newPhase == .draining) }
        listeners = []
        guard newPhase == .terminating else { return }
        serveBacklogs()  // closes them all: nothing more is taken
        for slot in 0..<table.highWater where table[slot].tunnel.phase != .closed {
            if isPrereading(slot) { abortPreread(slot, nil); continue }
            handle(slot, .terminate)
        }
        closeLingering(all: true)
    }
}
