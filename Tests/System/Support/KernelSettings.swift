import Glibc

/// Kernel settings that bound what a test may see, read from /proc/sys: bounds derived from them hold on any
/// host, where figures seen on one machine do not.
enum KernelSettings {
    /// The most a TCP send buffer grows to by autotuning (`tcp_wmem`'s maximum).
    static func tcpSendBufferMax() throws -> Int { try field(2, of: "/proc/sys/net/ipv4/tcp_wmem") }

    /// The most a TCP receive buffer grows to by autotuning (`tcp_rmem`'s maximum).
    static func tcpReceiveBufferMax() throws -> Int { try field(2, of: "/proc/sys/net/ipv4/tcp_rmem") }

    /// The lowest port `connect` picks by itself (`ip_local_port_range`): ports below it are never taken by
    /// an outgoing connection.
    static func ephemeralPortLow() throws -> Int { try field(0, of: "/proc/sys/net/ipv4/ip_local_port_range") }

    /// The most bytes one TCP connection over loopback can hold in kernel buffers in one direction: the
    /// sender's send buffer and the receiver's receive buffer, each at its autotuning maximum.
    static func tcpBytesInFlightMax() throws -> Int { try tcpSendBufferMax() + tcpReceiveBufferMax() }

    private static func field(_ index: Int, of path: String) throws -> Int {
        let fields = readWhole(path)?.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) ?? []
        guard index < fields.count, let value = Int(fields[index]) else { throw TestFailure("cannot read \(path)") }
        return value
    }
}
