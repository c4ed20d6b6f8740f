/// PROXY v2: a 16-byte fixed part (signature, version and command, family and protocol, length), then the
/// address block for the family and TLVs.
extension ProxyHeaderReader {
    static let v2Signature: StaticString = "\r\n\r\n\0\r\nQUIT\n"

    static func parseV2(_ bytes: ByteView) -> ParseOutcome<ReceivedProxyHeader> {
        guard matchesSignature(bytes, v2Signature) else { return .invalid("not a PROXY header: bad v2 signature") }
        if bytes.count > 12 {
            guard bytes[12] >> 4 == 2 else { return .invalid("PROXY v2: version is not 2") }
            guard bytes[12] & 0x0F <= 1 else { return .invalid("PROXY v2: command is not LOCAL or PROXY") }
        }
        if bytes.count > 13, addressLength(familyAndProtocol: bytes[13]) == nil {
            return .invalid("PROXY v2: unknown family or protocol")
        }
        guard bytes.count >= 16 else { return .needMore }
        let isProxy = bytes[12] & 0x0F == 1
        let familyAndProtocol = bytes[13]
        let payloadLength = Int(bytes[14]) << 8 | Int(bytes[15])
        guard payloadLength <= v2MaximumPayloadLength else { return .invalid("PROXY v2: header longer than 2064 bytes") }
        let addresses = addressLength(familyAndProtocol: familyAndProtocol)!
        guard !isProxy || payloadLength >= addresses else { return .invalid("PROXY v2: address block shorter than its family") }
        let headerLength = 16 + payloadLength
        guard bytes.count >= headerLength else { return .needMore }
        // LOCAL: the balancer's own connection (a health check); its addresses and TLVs are ignored.
        guard isProxy else { return .done(ReceivedProxyHeader(), consumed: headerLength) }
        guard tlvsFill(bytes, from: 16 + addresses, to: headerLength) else { return .invalid("PROXY v2: malformed TLV") }
        let header: ReceivedProxyHeader
        switch familyAndProtocol >> 4 {
        case 1:  // AF_INET: source, destination (4 bytes each), source port, destination port
            header = ReceivedProxyHeader(
                source: SocketAddress(ipv4: bytes, at: 16, port: port(bytes, at: 24)),
                destination: SocketAddress(ipv4: bytes, at: 20, port: port(bytes, at: 26)))
        case 2:  // AF_INET6: 16 bytes each, then the ports
            header = ReceivedProxyHeader(
                source: SocketAddress(ipv6: bytes, at: 16, port: port(bytes, at: 48)),
                destination: SocketAddress(ipv6: bytes, at: 32, port: port(bytes, at: 50)))
        default:  // UNSPEC, AF_UNIX: no IP client; the connection keeps its own peer address
            header = ReceivedProxyHeader()
        }
        return .done(header, consumed: headerLength)
    }

    /// The address block's length for a family/protocol byte; nil for a value the specification does not
    /// define (which receivers must reject): UNSPEC, or TCP/UDP over IPv4/IPv6, or UNIX stream/datagram.
    static func addressLength(familyAndProtocol byte: UInt8) -> Int? {
        switch byte {
        case 0x00: 0
        case 0x11, 0x12: 12
        case 0x21, 0x22: 36
        case 0x31, 0x32: 216
        default: nil
        }
    }

    static func port(_ bytes: ByteView, at offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    /// Whether `bytes[start..<end]` is a run of TLVs (type, 2-byte length, value) ending exactly at `end`.
    static func tlvsFill(_ bytes: ByteView, from start: Int, to end: Int) -> Bool {
        var position = start
        while position < end {
            guard position + 3 <= end else { return false }
            position += 3 + (Int(bytes[position + 1]) << 8 | Int(bytes[position + 2]))
        }
        return position == end
    }
}
