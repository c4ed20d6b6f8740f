import Foundation
import NIOHTTP1

/// Runtime control on the admin endpoint:
///
///     PUT    /backends/<pool>/<address>   state=ready|drain|maint  weight=N   (either or both)
///     DELETE /backends/<pool>/<address>   drop the overrides (ready, the file's weight)
///
/// Parameters come as a form body (`state=drain&weight=5`), a JSON body (`{"state": "drain", "weight": 5}`)
/// or the query string. The answer is the backend as `/backends` shows it. The address is the backend's
/// `host:port` as `/backends` prints it (`[::1]:80` for IPv6, brackets percent-encoded or not).
struct AdminControl {
    let proxy: Proxy
    let table: BackendTable

    typealias Answer = (HTTPResponseStatus, String, [UInt8])

    func answer(method: HTTPMethod, path: Substring, uri: String, body: [UInt8]) -> Answer {
        guard method == .PUT || method == .DELETE else {
            return refuse(.methodNotAllowed, "use PUT (state=, weight=) or DELETE on /backends/<pool>/<address>")
        }
        guard let key = Self.key(path) else {
            return refuse(.notFound, "expected /backends/<pool>/<address>, like /backends/web/10.0.1.1:8080")
        }
        var state: BackendAdminState?
        var weight: Int?
        if method == .PUT {
            let parameters: [String: String]
            switch Self.parameters(query: uri.split(separator: "?", maxSplits: 1).dropFirst().first, body: body) {
            case .success(let parsed): parameters = parsed
            case .failure(let problem): return refuse(.badRequest, problem.message)
            }
            for name in parameters.keys where name != "state" && name != "weight" {
                return refuse(.badRequest, "unknown parameter '\(name)': expected state (ready, drain, maint) and/or weight")
            }
            if let text = parameters["state"] {
                guard let parsed = BackendAdminState(name: text) else { return refuse(.badRequest, "state must be ready, drain or maint, not '\(text)'") }
                state = parsed
            }
            if let text = parameters["weight"] {
                guard let parsed = Int(text) else { return refuse(.badRequest, "weight must be an integer, not '\(text)'") }
                weight = parsed
            }
            guard state != nil || weight != nil else { return refuse(.badRequest, "nothing to change: give state= and/or weight=") }
        }
        do throws(ControlError) {
            _ = try proxy.control(key, state: state, weight: weight, reset: method == .DELETE)
        } catch {
            switch error {
            case .unknownPool, .unknownBackend: return refuse(.notFound, error.description)
            case .badWeight: return refuse(.badRequest, error.description)
            case .publish: return refuse(.internalServerError, error.description)
            }
        }
        let pool = proxy.plan.pools.first { $0.name == key.pool }
        guard let pool, let index = pool.members.firstIndex(where: { $0.address == key.address }) else {
            return refuse(.notFound, "the backend left the configuration meanwhile")
        }
        return (.ok, "application/json", Array(AdminServer.encode(BackendsDocument.Backend(pool, index, proxy: proxy))) + [0x0A])
    }

    private func refuse(_ status: HTTPResponseStatus, _ message: String) -> Answer {
        (status, "text/plain", Array((message + "\n").utf8))
    }

    /// `/backends/<pool>/<address>`: the pool is everything up to the last '/', the address after it.
    static func key(_ path: Substring) -> BackendKey? {
        let rest = path.dropFirst("/backends/".count)
        guard let slash = rest.lastIndex(of: "/"),
              let pool = String(rest[..<slash]).removingPercentEncoding, !pool.isEmpty,
              let text = String(rest[rest.index(after: slash)...]).removingPercentEncoding,
              let (host, port) = SocketAddress.split(text),
              let address = SocketAddress(numericHost: host, port: port)
        else { return nil }
        return BackendKey(pool: pool, address: address)
    }

    struct Problem: Error { let message: String }

    /// The query's and the body's parameters (the body wins): a form, or a JSON object of strings and numbers.
    static func parameters(query: Substring?, body: [UInt8]) -> Result<[String: String], Problem> {
        var parameters = form(query ?? "")
        let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("{") {
            guard let object = try? JSONDecoder().decode([String: Scalar].self, from: Data(text.utf8)) else {
                return .failure(Problem(message: "the body must be a JSON object of strings and integers"))
            }
            for (name, value) in object { parameters[name] = value.text }
        } else {
            parameters.merge(form(Substring(text))) { _, body in body }
        }
        return .success(parameters)
    }

    /// A JSON value a parameter may have.
    private struct Scalar: Decodable {
        let text: String
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Int.self) { text = String(number) } else { text = try container.decode(String.self) }
        }
    }

    private static func form(_ text: Substring) -> [String: String] {
        var parameters: [String: String] = [:]
        for pair in text.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(parts[1]) : ""
            parameters[name] = value
        }
        return parameters
    }
}
