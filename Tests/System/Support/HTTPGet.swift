import RingProxy

/// A minimal HTTP/1.1 GET for the admin endpoint (one request per connection, read until the server closes).
struct HTTPGet {
    let status: Int
    let body: String

    init(_ address: SocketAddress, _ path: String) throws {
        let client = try TestClient(address)
        try client.send("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n")
        let response = String(decoding: try client.receiveUntilClose(limit: 1 << 22), as: UTF8.self)
        guard let head = response.range(of: "\r\n\r\n"), let statusText = response.split(separator: " ").dropFirst().first,
              let status = Int(statusText) else {
            throw TestFailure("not an HTTP response: \(response.prefix(200))")
        }
        self.status = status
        body = String(response[head.upperBound...])
    }

    /// The value of the Prometheus series `name{labels}` (labels as written, in order), or nil.
    func metric(_ series: String) -> Double? {
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == series { return Double(parts[1]) }
        }
        return nil
    }
}
