/// One backend the health checker probes: what it needs and nothing of the plan it came from.
struct HealthTarget: Sendable, Equatable {
    /// The backend's row, where the outcome is recorded.
    let id: BackendID
    /// `pool/backend`, for the log line of a change.
    let name: String
    /// Where checks connect: the backend's address, or its `check_port`.
    let address: SocketAddress
    /// rise/fall, the probe, and the fail timeout a check failure marks the backend down for.
    let policy: HealthPolicy

    var checks: HealthChecks { policy.checks! }

    init?(id: BackendID, name: String, address: SocketAddress, policy: HealthPolicy) {
        guard let checks = policy.checks else { return nil }
        self.id = id
        self.name = name
        self.address = checks.port.map { address.withPort($0) } ?? address
        self.policy = policy
    }
}
