/// `health.type` and the keys of each type: what a check sends and what answer passes.
extension ConfigValidation {
    mutating func probe(_ spec: HealthSpec) -> HealthProbe? {
        let type = spec.type?.value ?? "connect"
        let sendExpectKeys: [SettingSource?] = [spec.send?.source, spec.sendHex?.source, spec.expect?.source]
        let httpKeys: [SettingSource?] = [spec.method?.source, spec.path?.source, spec.host?.source, spec.status?.source]
        func refuse(_ sources: [SettingSource?], _ owner: String) {
            for source in sources.compactMap({ $0 }) { fail(source, "applies to health.type = \"\(owner)\" only") }
        }
        let within = range(spec.expectWithin, 1...(1 << 20), what: "a size in bytes") ?? HealthProbe.defaultExpectWithin
        switch type {
        case "connect":
            refuse(sendExpectKeys + [spec.expectWithin?.source], "send-expect")
            refuse(httpKeys, "http")
            return .connect
        case "send-expect":
            refuse(httpKeys, "http")
            if let text = spec.send, let hex = spec.sendHex {
                fail(hex.source, "set either health.send or health.send_hex, not both (\(text.source.key) is set)")
            }
            let send = spec.sendHex.flatMap { setting in
                let bytes = Self.hexBytes(setting.value)
                if bytes == nil { fail(setting.source, "expected pairs of hex digits (spaces allowed), like \"16 03 01\"") }
                return bytes
            } ?? Array((spec.send?.value ?? "").utf8)
            guard let expect = spec.expect, !expect.value.isEmpty else {
                fail(spec.expect?.source ?? spec.type!.source, "health.type = \"send-expect\" needs health.expect, the text a live backend answers")
                return nil
            }
            if expect.value.utf8.count > within {
                fail(expect.source, "is \(expect.value.utf8.count) bytes, more than health.expect_within (\(within))")
            }
            return .sendExpect(send: send, expect: Array(expect.value.utf8), within: within)
        case "http":
            refuse(sendExpectKeys, "send-expect")
            var http = HTTPProbe(within: within)
            if let method = spec.method {
                if method.value.isEmpty || !method.value.utf8.allSatisfy({ (65...90).contains($0) }) {
                    fail(method.source, "expected an HTTP method in capitals, like \"GET\" or \"HEAD\"")
                } else { http.method = method.value }
            }
            if let path = spec.path {
                if !path.value.hasPrefix("/") || path.value.utf8.contains(where: { $0 <= 32 || $0 == 127 }) {
                    fail(path.source, "expected a path starting with '/', without spaces or control characters")
                } else { http.path = path.value }
            }
            if let host = spec.host {
                if host.value.isEmpty || host.value.utf8.contains(where: { $0 <= 32 || $0 == 127 }) {
                    fail(host.source, "expected a host name without spaces or control characters")
                } else { http.host = host.value }
            }
            if let status = spec.status {
                if status.value.isEmpty || status.value.contains(where: { !(100...599).contains($0) }) {
                    fail(status.source, "expected HTTP status codes from 100 to 599, like [200] or [200, 204]")
                } else { http.statuses = status.value }
            }
            return .http(http)
        default:
            fail(spec.type!.source, "expected \"connect\", \"send-expect\" or \"http\", got \"\(type)\"")
            return nil
        }
    }

    /// "2a 0d0a" → [0x2a, 0x0d, 0x0a]; nil unless every non-space character pairs into a hex byte.
    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = text.unicodeScalars.filter { $0 != " " }
        guard digits.count % 2 == 0, !digits.isEmpty else { return nil }
        var bytes: [UInt8] = []
        var iterator = digits.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let byte = UInt8(String(high) + String(low), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

extension HealthSpec {
    /// The keys that only mean something with active checks (`interval`).
    var activeCheckSources: [SettingSource] {
        [timeout?.source, rise?.source, fall?.source, type?.source, send?.source, sendHex?.source, expect?.source,
         expectWithin?.source, method?.source, path?.source, host?.source, status?.source, checkPort?.source].compactMap { $0 }
    }
}
