import Glibc

/// Socket addresses built from raw address bytes in network order (a PROXY v2 address block, the result
/// of `inet_pton`), and the address of one read back as a 128-bit number, without allocating.
extension SocketAddress {
    /// An IPv4 address from the 4 bytes at `offset` of `bytes` (network order). The caller checked the range.
    init(ipv4 bytes: UnsafeRawBufferPointer, at offset: Int, port: UInt16) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        self.init(copying: address)
    }

    /// An IPv6 address from the 16 bytes at `offset` of `bytes` (network order). The caller checked the range.
    init(ipv6 bytes: UnsafeRawBufferPointer, at offset: Int, port: UInt16) {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &address.sin6_addr) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 16]))
        }
        self.init(copying: address)
    }

    private init<Address>(copying address: Address) {
        var storage = sockaddr_storage()
        withUnsafeBytes(of: address) { source in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
        }
        self.init(storage: storage, length: socklen_t(MemoryLayout<Address>.size))
    }

    /// The IP address as a 128-bit number (`high` holds the first 8 bytes, big-endian): an IPv4 address, or
    /// an IPv4-mapped IPv6 one (`::ffff:a.b.c.d`), is `a.b.c.d` in the top 32 bits of `high` with `isIPv4`
    /// set. nil for a family that is neither.
    var addressNumber: (isIPv4: Bool, high: UInt64, low: UInt64)? {
        withSockaddr { pointer, _ in
            let raw = UnsafeRawPointer(pointer)
            switch Int32(pointer.pointee.sa_family) {
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
