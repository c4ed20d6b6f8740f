/// Socket addresses built from raw address bytes in network order (a PROXY v2 address block).
extension SocketAddress {
    /// An IPv4 address from the 4 bytes at `offset` of `bytes` (network order). The caller checked the range.
    init(ipv4 bytes: ByteView, at offset: Int, port: UInt16) {
        self.init(ipv4: UInt32(Self.number(bytes, at: offset, count: 4)), port: port)
    }

    /// An IPv6 address from the 16 bytes at `offset` of `bytes` (network order). The caller checked the range.
    init(ipv6 bytes: ByteView, at offset: Int, port: UInt16) {
        self.init(ipv6High: Self.number(bytes, at: offset, count: 8), low: Self.number(bytes, at: offset + 8, count: 8), port: port)
    }

    /// The `count` bytes at `offset` as a big-endian number.
    private static func number(_ bytes: ByteView, at offset: Int, count: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in offset..<offset + count { value = value << 8 | UInt64(bytes[index]) }
        return value
    }
}
