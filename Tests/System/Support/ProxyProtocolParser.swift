/// A PROXY protocol reader of our own (v1 and v2), written from HAProxy's specification, to check what the
/// proxy sends independently of the code that writes it.
struct ProxyProtocolHeader: Equatable {
    var version: Int
    var source: String
    var sourcePort: Int
    var destination: String
    var destinationPort: Int

    /// "v1 127.0.0.9:51234 -> 127.0.0.1:8080", as the test backend answers it.
    var summary: String { "v\(version) \(source):\(sourcePort) -> \(destination):\(destinationPort)" }

    enum ParseResult: Equatable {
        case incomplete
        case invalid(String)
        case header(ProxyProtocolHeader, length: Int)
    }

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func parse(_ bytes: [UInt8]) -> ParseResult {
        if bytes.count < 12 { return bytes.starts(with: Array("PROXY".utf8).prefix(bytes.count)) || v2Signature.starts(with: bytes) ? .incomplete : .invalid("no signature") }
        if bytes.starts(with: v2Signature) { return parseV2(bytes) }
        if bytes.starts(with: Array("PROXY ".utf8)) { return parseV1(bytes) }
        return .invalid("no signature")
    }

    private static func parseV1(_ bytes: [UInt8]) -> ParseResult {
        guard let end = bytes.firstIndex(of: 0x0A) else { return bytes.count > 107 ? .invalid("v1 line too long") : .incomplete }
        guard end > 0, bytes[end - 1] == 0x0D else { return .invalid("v1 line must end with CRLF") }
        let fields = String(decoding: bytes[0..<(end - 1)], as: UTF8.self).split(separator: " ")
        guard fields.count == 6, fields[0] == "PROXY", fields[1] == "TCP4" || fields[1] == "TCP6",
              let sourcePort = Int(fields[4]), let destinationPort = Int(fields[5]) else {
            return .invalid("bad v1 line")
        }
        return .header(ProxyProtocolHeader(version: 1, source: String(fields[2]), sourcePort: sourcePort,
                                           destination: String(fields[3]), destinationPort: destinationPort), length: end + 1)
    }

    private static func parseV2(_ bytes: [UInt8]) -> ParseResult {
        guard bytes.count >= 16 else { return .incomplete }
        guard bytes[12] == 0x21 else { return .invalid("v2 version/command byte \(bytes[12])") }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard bytes.count >= 16 + length else { return .incomplete }
        let body = Array(bytes[16..<(16 + length)])
        let port = { (offset: Int) in Int(body[offset]) << 8 | Int(body[offset + 1]) }
        switch bytes[13] {
        case 0x11 where length >= 12:
            let ip = { (offset: Int) in body[offset..<(offset + 4)].map(String.init).joined(separator: ".") }
            return .header(ProxyProtocolHeader(version: 2, source: ip(0), sourcePort: port(8), destination: ip(4), destinationPort: port(10)),
                           length: 16 + length)
        case 0x21 where length >= 36:
            let ip = { (offset: Int) in
                stride(from: offset, to: offset + 16, by: 2).map { String(Int(body[$0]) << 8 | Int(body[$0 + 1]), radix: 16) }.joined(separator: ":")
            }
            return .header(ProxyProtocolHeader(version: 2, source: ip(0), sourcePort: port(32), destination: ip(16), destinationPort: port(34)),
                           length: 16 + length)
        default:
            return .invalid("v2 family \(bytes[13]) with length \(length)")
        }
    }
}
