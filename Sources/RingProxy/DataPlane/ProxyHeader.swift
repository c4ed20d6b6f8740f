import Glibc

/// Writing the PROXY header that `send_proxy` puts before a connection's first byte towards its backend.
extension ProxyProtocolVersion {
    /// Room for the longest header of either version (v1 over IPv6 is 104 bytes).
    public static let maximumHeaderLength = 108

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// The header for a connection from `source` (the client) to `destination` (the address it reached): at
    /// most `maximumHeaderLength` bytes.
    public func header(source: SocketAddress, destination: SocketAddress) -> [UInt8] {
        switch self {
        case .v1:
            let family = source.family == AF_INET6 ? "TCP6" : "TCP4"
            return Array("PROXY \(family) \(source.host) \(destination.host) \(source.port) \(destination.port)\r\n".utf8)
        case .v2:
            var header = Self.v2Signature
            header.append(0x21)  // version 2, command PROXY
            let isV6 = source.family == AF_INET6
            header.append(isV6 ? 0x21 : 0x11)  // TCP over IPv6 or IPv4
            let addressLength: UInt16 = isV6 ? 36 : 12
            header.append(UInt8(addressLength >> 8))
            header.append(UInt8(addressLength & 0xFF))
            header += source.addressBytes
            header += destination.addressBytes
            header += [UInt8(source.port >> 8), UInt8(source.port & 0xFF)]
            header += [UInt8(destination.port >> 8), UInt8(destination.port & 0xFF)]
            return header
        }
    }
}
