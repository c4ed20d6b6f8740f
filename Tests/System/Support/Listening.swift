import Foundation
import Glibc
import RingProxy

/// Whether a socket listens on `address`'s port (in /proc/net/tcp or tcp6, by its family): a way to wait for
/// a peer to start without connecting to it, where a probe connection would itself be counted (a balancer
/// passes it on to the proxy as a client without a PROXY header).
func isListening(_ address: SocketAddress) -> Bool {
    let table = address.family == AF_INET6 ? "/proc/net/tcp6" : "/proc/net/tcp"
    guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { return false }
    let port = String(format: ":%04X", address.port)
    // Each row: sl, local_address (hex address:port), rem_address, st (0A: LISTEN), ...
    return text.split(separator: "\n").dropFirst().contains { row in
        let fields = row.split(separator: " ")
        return fields.count > 3 && fields[1].hasSuffix(port) && fields[3] == "0A"
    }
}
