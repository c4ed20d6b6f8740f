import Foundation
import Glibc
import RingProxy

/// Whether a socket listens on `address`'s port (in /proc/net/tcp or tcp6, by its family): a way to wait for
/// a peer to start without connecting to it, where a probe connection would itself be counted (a balancer
/// passes it on to the proxy as a client without a PROXY header).
func isListening(_ address: SocketAddress) -> Bool {
    let table = address.family == AF_INET6 ? "/proc/net/tcp6" : "/proc/net/tcp"
    guard let text = readWhole(table) else { return false }
    let port = String(format: ":%04X", address.port)
    // Each row: sl, local_address (hex address:port), rem_address, st (0A: LISTEN), ...
    return text.split(separator: "\n").dropFirst().contains { row in
        let fields = row.split(separator: " ")
        return fields.count > 3 && fields[1].hasSuffix(port) && fields[3] == "0A"
    }
}

/// A /proc file read to its end with plain reads: its size reads as 0, and with thousands of sockets in the
/// table (the suite's connection storms leave them in TIME_WAIT) it is megabytes long.
func readWhole(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return count == 0 ? String(decoding: bytes, as: UTF8.self) : nil }
        bytes += chunk[0..<count]
    }
}
