/// A server name a TLS route accepts (`sni = ["api.example.com", "*.example.com"]`): an exact name, or a
/// wildcard for exactly one label, `*.example.com`, which matches `a.example.com` but neither `example.com`
/// nor `a.b.example.com`. Matching ignores ASCII case and a trailing dot on either side.
///
/// A pattern is a DNS name: labels of letters, digits, `-` and `_`, none empty or over 63 bytes, at most 253
/// bytes in all; `*` only as the whole first label, followed by at least one label.
public struct ServerNamePattern: Sendable, Equatable, CustomStringConvertible {
    /// The name after `*.` for a wildcard, or the whole name; lowercased, without a trailing dot.
    private let name: [UInt8]
    public let isWildcard: Bool

    public init?(_ text: String) {
        var bytes = Array(text.utf8)
        if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
        isWildcard = bytes.starts(with: [UInt8(ascii: "*"), UInt8(ascii: ".")])
        if isWildcard { bytes.removeFirst(2) }
        guard !bytes.isEmpty, bytes.count <= 253 else { return nil }
        var labelLength = 0
        for index in bytes.indices {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") {
                guard labelLength > 0 else { return nil }
                labelLength = 0
                continue
            }
            guard ClientHelloReader.isHostNameByte(byte) else { return nil }
            labelLength += 1
            guard labelLength <= 63 else { return nil }
            if byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z") { bytes[index] = byte | 0x20 }
        }
        guard labelLength > 0 else { return nil }
        name = bytes
    }

    /// Whether the server name is this name or, for a wildcard, one label followed by this name. No allocation.
    public func matches(_ serverName: String) -> Bool {
        var serverName = serverName
        return serverName.withUTF8 { given in
            var count = given.count
            if count > 0, given[count - 1] == UInt8(ascii: ".") { count -= 1 }
            let start: Int
            if isWildcard {
                // one non-empty label, a dot, then the name
                start = count - name.count
                guard start >= 2, given[start - 1] == UInt8(ascii: ".") else { return false }
                for index in 0..<start - 1 where given[index] == UInt8(ascii: ".") { return false }
            } else {
                start = 0
                guard count == name.count else { return false }
            }
            for index in 0..<name.count {
                var byte = given[start + index]
                if byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z") { byte |= 0x20 }
                guard byte == name[index] else { return false }
            }
            return true
        }
    }

    /// The pattern as configured, normalised: `*.example.com`, `api.example.com`.
    public var description: String { (isWildcard ? "*." : "") + String(decoding: name, as: UTF8.self) }
}
