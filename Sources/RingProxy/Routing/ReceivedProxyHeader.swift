/// The addresses a PROXY protocol header (v1 or v2) carried: the real client behind a trusted balancer, and
/// the address it connected to. Read by `ProxyHeaderReader`.
public struct ReceivedProxyHeader: Sendable, Equatable {
    /// The client's address and port. nil when the header names no IP client (v2 `LOCAL`, the `UNSPEC` and
    /// `UNIX` families, v1 `UNKNOWN`): then keep the connection's own peer address.
    public var source: SocketAddress?
    /// The address and port the client connected to on the balancer; nil exactly when `source` is.
    public var destination: SocketAddress?

    public init(source: SocketAddress? = nil, destination: SocketAddress? = nil) {
        self.source = source
        self.destination = destination
    }
}
