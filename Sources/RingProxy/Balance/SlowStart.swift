/// Slow start: a backend that comes back up or joins takes a share that grows linearly over `slow_start`
/// instead of its full share at once (HAProxy's `slowstart`, nginx's `slow_start`). Nothing updates it on a
/// timer: the ramp's start is one word of the backend's row (`BackendHealth.rampStart`) and each pick derives
/// the effective weight from it and the pick's clock, so the hot path reads one word and divides only while
/// a ramp runs.
enum SlowStart {
    /// Effective weights are in 1/`scale`ths of a configured weight, so a ramp moves smoothly even for weight 1.
    static let scale = 1024

    /// The weight of a backend with weight `full` (scaled) whose ramp started at `rampStart` (0: none), at `now`.
    @inline(__always)
    static func weight(full: Int, rampStart: Int64, now: Int64, duration: Int64) -> Int {
        guard rampStart > 0, duration > 0 else { return full }
        // A ramp another thread started after this pick read its clock counts as just started.
        let elapsed = max(0, now - rampStart)
        guard elapsed < duration else { return full }
        return max(1, Int(Int64(full) * elapsed / duration))
    }
}

extension BackendPool {
    /// The weight member `index` balances with now, in weight units (fractional while slow start ramps it),
    /// for `/backends` and metrics.
    public func effectiveWeight(of index: Int, table: BackendTable, now: Int64 = monotonicMilliseconds()) -> Double {
        let full = weights[index] * SlowStart.scale
        let ramped = SlowStart.weight(full: full, rampStart: table.health(of: ids[index]).rampStart, now: now, duration: slowStartMilliseconds)
        return Double(ramped) / Double(SlowStart.scale)
    }
}
