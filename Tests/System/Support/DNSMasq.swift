import Foundation
import Glibc
import RingProxy
import XCTest

/// A dnsmasq the test starts: the only server for `ringproxy.test` (names it does not know are NXDOMAIN), on
/// 127.0.0.1 and a port of its own, answering from a hosts file the test rewrites (SIGHUP re-reads it) and
/// SRV records given on its command line (a restart changes them). Every answer has a TTL of 1 s.
final class DNSMasq {
    static let domain = "ringproxy.test"
    static let ttlSeconds = 1.0
    let port: UInt16
    private let binary: String
    private let hostsFile: String
    private let pidFile: String
    private var process: BuiltBinary.Running?

    /// `hosts`: "address name" lines; `srv`: dnsmasq `--srv-host` values ("_x._tcp.ringproxy.test,target,port,priority,weight").
    init(hosts: [String], srv: [String] = []) throws {
        binary = try requireTool(["/usr/sbin/dnsmasq"], install: "apt-get install dnsmasq-base")
        port = try Self.freePort()
        hostsFile = try temporaryFile(hosts.joined(separator: "\n") + "\n", suffix: ".hosts")
        pidFile = NSTemporaryDirectory() + "ringproxy-dnsmasq-\(UUID().uuidString).pid"
        // dnsmasq drops to user nobody, which must still read the file on SIGHUP.
        chmod(hostsFile, 0o644)
        try start(srv: srv)
    }

    deinit {
        stop()
        unlink(hostsFile)
        unlink(pidFile)
    }

    /// The resolver address, as `resolvers` takes it.
    var resolver: String { "127.0.0.1:\(port)" }

    /// Starts it (again, on the same port) with `srv` records.
    func start(srv: [String]) throws {
        let arguments = [
            binary, "--no-daemon", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
            "--no-hosts", "--addn-hosts=\(hostsFile)", "--local-ttl=1", "--local=/\(Self.domain)/", "--log-facility=-",
            "--pid-file=\(pidFile)",
        ] + srv.map { "--srv-host=\($0)" }
        // A port just given up by the dnsmasq before this one may take a moment to bind again.
        for _ in 0..<20 {
            let running = try BuiltBinary.Running(executable: binary, arguments: arguments)
            process = running
            guard eventually(10, { DNSMasq.answers(port: self.port) || !running.isRunning }) else { break }
            if running.isRunning { return }
            let output = running.finish().stderr
            process = nil
            guard output.contains("Address already in use") else { throw TestFailure("dnsmasq failed: \(output)") }
            usleep(100_000)
        }
        throw TestFailure("dnsmasq did not answer on 127.0.0.1:\(port): \(process?.stderrSoFar ?? "")")
    }

    /// Rewrites the hosts file and has dnsmasq read it again (SIGHUP); returns once it has.
    func setHosts(_ hosts: [String]) throws {
        guard let process else { throw TestFailure("dnsmasq is not running") }
        let reads = process.stderrSoFar.components(separatedBy: "read \(hostsFile)").count
        try (hosts.joined(separator: "\n") + "\n").write(toFile: hostsFile, atomically: false, encoding: .utf8)
        process.signal(SIGHUP)
        guard eventually(5, { process.stderrSoFar.components(separatedBy: "read \(self.hostsFile)").count > reads }) else {
            throw TestFailure("dnsmasq did not re-read its hosts file: \(process.stderrSoFar.suffix(500))")
        }
    }

    /// Starts it again (after `stop`) with a new hosts file and new SRV records.
    func restart(hosts: [String], srv: [String] = []) throws {
        stop()
        try (hosts.joined(separator: "\n") + "\n").write(toFile: hostsFile, atomically: false, encoding: .utf8)
        try start(srv: srv)
    }

    /// Stops it (SIGTERM): its port then refuses, as a dead resolver does.
    func stop() {
        guard let process else { return }
        process.signal(SIGTERM)
        _ = process.finish()
        self.process = nil
    }

    /// Whether something answers a DNS query on 127.0.0.1:`port` within 200 ms.
    static func answers(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var limit = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        // A query for "probe." type A: header (id, RD, one question), the name, type 1, class 1.
        let query: [UInt8] = [0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5] + Array("probe".utf8) + [0, 0, 1, 0, 1]
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        let sent = query.withUnsafeBytes { bytes in address.withSockaddr { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, $1) } }
        guard sent == query.count else { return false }
        var answer = [UInt8](repeating: 0, count: 512)
        return answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } >= 12
    }

    /// A port free for both UDP and TCP (dnsmasq listens on both), below the ephemeral range, so that the
    /// tests' own connections do not take it between two starts.
    private static func freePort() throws -> UInt16 {
        let ceiling = UInt16(min(max(try KernelSettings.ephemeralPortLow(), 12000), 65535))
        for _ in 0..<200 {
            let port = UInt16.random(in: 10000..<ceiling)
            let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
            let free = [SOCK_DGRAM, SOCK_STREAM].allSatisfy { type in
                let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                defer { Glibc.close(fd) }
                return address.withSockaddr { bind(fd, $0, $1) } == 0
            }
            if free { return port }
        }
        throw TestFailure("no port free for UDP and TCP in 10000..<\(ceiling)")
    }
}
