/// Reads the PROXY protocol header (haproxy.org's proxy-protocol.txt, versions 1 and 2) that a trusted
/// balancer puts before a connection's first byte, so that the real client's address replaces the
/// balancer's. Only called for connections from trusted sources; from others the bytes are payload.
///
/// The version is told by its signature: `PROXY ` (v1, text) or the 12 bytes `\r\n\r\n\0\r\nQUIT\n` (v2,
/// binary). `parse` takes everything received so far and answers:
/// - `.needMore` while the bytes are a valid beginning of a header (a partial signature included);
/// - `.done(header, consumed:)` with the header's length, which the caller strips before forwarding;
/// - `.invalid(reason)` for bytes matching neither signature, or a header that cannot be or become valid:
///   v1: a protocol other than `TCP4`, `TCP6`, `UNKNOWN`; fields not separated by single spaces; an address
///   that does not parse for its family (`inet_pton`); a port outside 0–65535 or with a leading zero; a line
///   not ended by CRLF within 107 bytes. v2: version other than 2, command other than LOCAL or PROXY, a
///   family/protocol byte other than UNSPEC, TCP or UDP over IPv4 or IPv6, or UNIX stream or datagram; an
///   address block shorter than its family needs; a length over `v2MaximumPayloadLength`; TLVs that do not
///   exactly fill the rest.
///
/// v2 TLVs (ALPN, authority, CRC32C, unique id, SSL, cloud vendors' ids) are checked for shape and skipped:
/// nothing in them is used, and the CRC32C one is not verified. With `LOCAL` (a balancer's health check) the
/// address block and TLVs are skipped unread, as the specification says. No allocation.
public enum ProxyHeaderReader {
    /// The longest v1 header, CRLF included (the specification's bound).
    public static let v1MaximumLength = 107
    /// The most bytes a v2 header may carry after its 16-byte fixed part: the addresses (216 bytes for
    /// UNIX, 36 for IPv6) and TLVs. Balancers send a few dozen bytes of TLVs (an AWS VPC endpoint id, a GCP
    /// PSC connection id, SSL details); 2048 leaves room for a client certificate's common name and more.
    public static let v2MaximumPayloadLength = 2_048
    /// The longest header of either version: what a caller must be ready to hold before a header is
    /// complete (v2: 16 + 2048 bytes). A longer header is `.invalid`.
    public static let maximumLength = 16 + v2MaximumPayloadLength

    public static func parse(_ bytes: ByteView) -> ParseOutcome<ReceivedProxyHeader> {
        guard bytes.count > 0 else { return .needMore }
        switch bytes[0] {
        case UInt8(ascii: "P"):
            return parseV1(bytes)
        case 0x0D:
            return parseV2(bytes)
        default:
            return .invalid("no PROXY header signature")
        }
    }

    /// Whether the first bytes of `bytes` (as many as there are, up to the signature's length) match it.
    static func matchesSignature(_ bytes: ByteView, _ signature: StaticString) -> Bool {
        let count = min(bytes.count, signature.utf8CodeUnitCount)
        for index in 0..<count where bytes[index] != signature.utf8Start[index] {
            return false
        }
        return true
    }
}
