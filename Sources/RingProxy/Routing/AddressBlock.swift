import Glibc

/// A CIDR block of client addresses, for source rules (`allow`, `deny`) and trusted PROXY senders
/// (`accept_proxy`): `"10.0.0.0/8"`, `"2001:db8::/32"`, `"::1/128"`, or one address (`"192.0.2.7"` is /32,
/// `"::1"` is /128).
///
/// IPv4 blocks also match IPv4-mapped IPv6 client addresses (`::ffff:10.1.2.3`, what a dual-stack listener
/// sees), and a block written in mapped form with a prefix of 96 or more (`::ffff:10.0.0.0/104`) is the IPv4
/// block it names. Other IPv6 blocks match IPv6 clients only: `::/0` is every IPv6 client, not every client.
/// The text must be exact: no spaces, no zone (`%eth0`), a decimal prefix without leading zeros, and no bits
/// set past the prefix (`10.0.0.1/8` is refused as the likely typo it is).
public struct AddressBlock: Sendable, Equatable, CustomStringConvertible {
    let isIPv4: Bool
    /// The network as a 128-bit number (`SocketAddress.addressNumber`'s layout: IPv4 in the top 32 bits).
    let high: UInt64
    let low: UInt64
    let maskHigh: UInt64
    let maskLow: UInt64
    /// The prefix length: 0–32 for IPv4, 0–128 for IPv6.
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = SocketAddress(numericHost: String(parts[0]), port: 0),
              let number = address.addressNumber
        else { return nil }
        let written = address.family == AF_INET ? 32 : 128
        var prefix = written
        if parts.count == 2 {
            let digits = parts[1].utf8
            guard (1...3).contains(digits.count), digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                  digits.count == 1 || digits.first != UInt8(ascii: "0"), let value = Int(parts[1]), value <= written
            else { return nil }
            prefix = value
        }
        if number.isIPv4, written == 128 {
            // `::ffff:a.b.c.d/n`: an IPv4 block when the prefix covers the mapped prefix, else an IPv6 one.
            guard prefix >= 96 else {
                self.init(isIPv4: false, high: 0, low: 0xFFFF << 32 | number.high >> 32, prefixLength: prefix)
                return
            }
            prefix -= 96
        }
        self.init(isIPv4: number.isIPv4, high: number.high, low: number.low, prefixLength: prefix)
    }

    /// nil when bits past the prefix are set.
    private init?(isIPv4: Bool, high: UInt64, low: UInt64, prefixLength: Int) {
        let maskHigh: UInt64 = prefixLength >= 64 ? ~0 : prefixLength == 0 ? 0 : ~0 << (64 - prefixLength)
        let maskLow: UInt64 = prefixLength <= 64 ? 0 : ~0 << (128 - prefixLength)
        guard high & ~maskHigh == 0, low & ~maskLow == 0 else { return nil }
        self.isIPv4 = isIPv4
        self.high = high
        self.low = low
        self.maskHigh = maskHigh
        self.maskLow = maskLow
        self.prefixLength = prefixLength
    }

    /// Whether the client address (its port ignored) is in the block. No allocation.
    public func contains(_ address: SocketAddress) -> Bool {
        guard let number = address.addressNumber, number.isIPv4 == isIPv4 else { return false }
        return number.high & maskHigh == high && number.low & maskLow == low
    }

    /// The block in CIDR form, IPv4 blocks in dotted form: `10.0.0.0/8`, `2001:db8::/32`.
    public var description: String {
        let address = isIPv4 ? SocketAddress(ipv4: UInt32(high >> 32), port: 0) : SocketAddress(ipv6High: high, low: low, port: 0)
        return "\(address.host)/\(prefixLength)"
    }
}
