/// The PROXY protocol (HAProxy's), which tells a backend the real client address: a header sent to the
/// backend before any payload. nginx (`listen ... proxy_protocol`), HAProxy (`accept-proxy`) and most
/// servers that sit behind load balancers read it.
public enum ProxyProtocolVersion: String, CaseIterable, Sendable {
    /// Text: `PROXY TCP4 192.0.2.1 198.51.100.7 51234 443\r\n`.
    case v1
    /// Binary: a 12-byte signature, version/command, family, length, then the addresses.
    case v2
}
