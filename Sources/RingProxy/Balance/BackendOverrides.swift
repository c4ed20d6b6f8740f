/// A backend as runtime control names it: its pool and address, whatever its origin (file, DNS), so that an
/// override follows the backend across reloads and re-resolutions.
public struct BackendKey: Hashable, Sendable, CustomStringConvertible {
    public let pool: String
    public let address: SocketAddress

    public init(pool: String, address: SocketAddress) {
        self.pool = pool
        self.address = address
    }

    public var description: String { "\(pool)/\(address)" }
}

/// What the operator changed at runtime about one backend.
public struct BackendOverride: Sendable, Equatable {
    /// nil: ready (no override).
    public var state: BackendAdminState?
    /// nil: the weight its source gives.
    public var weight: Int?

    public init(state: BackendAdminState? = nil, weight: Int? = nil) {
        self.state = state
        self.weight = weight
    }

    var isEmpty: Bool { (state == nil || state == .ready) && weight == nil }
}

/// The runtime overrides of every backend: kept by the control plane (reloads and admin requests, one at a
/// time), applied to each plan it builds, and dropped when their backend leaves the configuration.
final class BackendOverrides {
    private(set) var entries: [BackendKey: BackendOverride] = [:]

    subscript(key: BackendKey) -> BackendOverride? {
        get { entries[key] }
        set { entries[key] = newValue?.isEmpty == false ? newValue : nil }
    }

    /// Forgets the overrides of backends not in `keys` (they left the configuration); returns those dropped.
    @discardableResult
    func prune(keeping keys: Set<BackendKey>) -> [BackendKey] {
        let gone = entries.keys.filter { !keys.contains($0) }
        for key in gone { entries.removeValue(forKey: key) }
        return gone
    }
}
