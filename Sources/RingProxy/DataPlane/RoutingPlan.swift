/// A listener's routing stage as the workers run it: the settings, and one `BackendPool` per pool its routes
/// name (each route's pool an index into `pools`). Immutable; a reload builds a new one.
final class RoutingPlan: @unchecked Sendable {
    let settings: ListenerRouting
    let pools: [BackendPool]
    /// `routePools[route]`: the route's pool, an index into `pools`.
    let routePools: [Int]
    /// `preread_timeout` in worker ticks (`Worker.idleTicks`: never early).
    let prereadTicks: UInt32
    /// The listener's id (the per-client limits key their rows by it).
    let listenerID: UInt32

    init(settings: ListenerRouting, pools: [BackendPool], routePools: [Int], listenerID: UInt32) {
        self.settings = settings
        self.pools = pools
        self.routePools = routePools
        self.listenerID = listenerID
        prereadTicks = Worker.idleTicks(settings.prereadTimeout) ?? 1
    }

    /// The pool a client that sent `hello` goes to: an index into `pools`, `RouteEntry.defaultPool` for the
    /// listener's own, or nil when no route takes it and there is no default.
    func pool(for hello: ClientHello?) -> Int16? {
        for (index, route) in settings.routes.enumerated() where route.matches(hello) { return Int16(routePools[index]) }
        return settings.hasDefaultPool ? RouteEntry.defaultPool : nil
    }
}
