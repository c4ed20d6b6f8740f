/// What routing needs from a TLS ClientHello: the server name the client asked for and the application
/// protocols it offers. Read by `ClientHelloReader`; the hello itself goes on to the backend unchanged.
public struct ClientHello: Sendable, Equatable {
    /// The `host_name` of the server_name extension (SNI), lowercased, trailing dot removed. nil when the
    /// hello has no server_name extension (a client connecting by IP address, an old client) or the extension
    /// names no host_name.
    public var serverName: String?
    /// The ALPN protocol names in the client's order (`["h2", "http/1.1"]`); empty without the ALPN extension.
    /// Names are decoded as UTF-8 (the registered ones are ASCII); a name that is not valid UTF-8 gets
    /// replacement characters and so matches no configured name.
    public var alpn: [String]

    public init(serverName: String? = nil, alpn: [String] = []) {
        self.serverName = serverName
        self.alpn = alpn
    }
}
