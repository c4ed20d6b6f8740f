extension TestServer {
    /// Backends that answer with their own address, on `hosts`, all on one port (a DNS name's addresses share
    /// the backend entry's port), keyed by host. Tries up to 20 ports that are free on the first host.
    static func bannersOnOnePort(_ hosts: [String]) throws -> [String: TestServer] {
        for _ in 0..<20 {
            let first = try TestServer(.banner(hosts[0]), host: hosts[0])
            var all = [hosts[0]: first]
            do {
                for host in hosts.dropFirst() { all[host] = try TestServer(.banner(host), host: host, port: first.port) }
                return all
            } catch {
                continue
            }
        }
        throw TestFailure("no port is free on every one of \(hosts)")
    }
}
