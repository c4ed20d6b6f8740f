import Glibc

/// Socket addresses to and from their IP address as numbers (for address blocks and PROXY headers), without
/// allocating.
extension SocketAddress {
    /// The IPv4 address `address` (host order: `10.0.0.1` is `0x0A00_0001`).
    public init(ipv4 address: UInt32, port: UInt16) {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            var socket = sockaddr_in()
            socket.sin_family = sa_family_t(AF_INET)
            socket.sin_port = port.bigEndian
            socket.sin_addr.s_addr = address.bigEndian
            raw.storeBytes(of: socket, as: sockaddr_in.self)
        }
        self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in>.size))
    }

    /// The IPv6 address whose first 8 bytes are `high` and last 8 are `low` (each big-endian as a number).
    public init(ipv6High high: UInt64, low: UInt64, port: UInt16) {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            var socket = sockaddr_in6()
            socket.sin6_family = sa_family_t(AF_INET6)
            socket.sin6_port = port.bigEndian
            raw.storeBytes(of: socket, as: sockaddr_in6.self)
            let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            raw.storeBytes(of: high.bigEndian, toByteOffset: offset, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
        }
        self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
    }

    /// The numeric address written in `text` (`inet_pton` for the family, from a NUL-terminated copy on the
    /// stack); nil when it does not parse or is longer than any address.
    public init?(numericHost text: ByteView, isIPv6: Bool, port: UInt16) {
        let parsed: SocketAddress? = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { copy in
            guard text.count < copy.count else { return nil }
            for index in 0..<text.count { copy[index] = CChar(bitPattern: text[index]) }
            copy[text.count] = 0
            return withUnsafeTemporaryAllocation(byteCount: 16, alignment: 8) { raw in
                guard inet_pton(isIPv6 ? AF_INET6 : AF_INET, copy.baseAddress!, raw.baseAddress!) == 1 else { return nil }
                if !isIPv6 { return SocketAddress(ipv4: UInt32(bigEndian: raw.loadUnaligned(as: UInt32.self)), port: port) }
                return SocketAddress(
                    ipv6High: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
                    low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)), port: port)
            }
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// The IP address as a 128-bit number (`high` holds the first 8 bytes, big-endian): an IPv4 address, or
    /// an IPv4-mapped IPv6 one (`::ffff:a.b.c.d`), is `a.b.c.d` in the top 32 bits of `high` with `isIPv4`
    /// set. nil for a family that is neither.
    public var addressNumber: (isIPv4: Bool, high: UInt64, low: UInt64)? {
        withUnsafeBytes(of: storage) { raw in
            switch family {
            case AF_INET:
                let offset = MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!
                let v4 = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                return (true, UInt64(v4) << 32, 0)
            case AF_INET6:
                let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
                let high = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                let low = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
                if high == 0, low >> 32 == 0xFFFF {
                    return (true, low << 32, 0)
                }
                return (false, high, low)
            default:
                return nil
            }
        }
    }
}
