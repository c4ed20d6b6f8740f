/// PROXY v1: `PROXY TCP4 192.0.2.1 198.51.100.7 51234 443\r\n`, `PROXY TCP6 ...`, or `PROXY UNKNOWN ...\r\n`.
extension ProxyHeaderReader {
    static let v1Signature: StaticString = "PROXY "

    /// Why a line stopped parsing: it is cut short so far, or it cannot become a header.
    enum LineProblem: Error {
        case needMore
        case invalid(String)
    }

    static func parseV1(_ bytes: ByteView) -> ParseOutcome<ReceivedProxyHeader> {
        guard matchesSignature(bytes, v1Signature) else { return .invalid("not a PROXY header: bad v1 signature") }
        let start = v1Signature.utf8CodeUnitCount
        guard bytes.count > start else { return .needMore }
        // The protocol: TCP4, TCP6 or UNKNOWN.
        var end = start
        while end < min(bytes.count, v1MaximumLength), end - start < 7, isUpperOrDigit(bytes[end]) { end += 1 }
        let isIPv6: Bool
        if matches(bytes, start..<end, "TCP4") {
            isIPv6 = false
        } else if matches(bytes, start..<end, "TCP6") {
            isIPv6 = true
        } else if matches(bytes, start..<end, "UNKNOWN") {
            return parseV1Unknown(bytes, from: end)
        } else if end == bytes.count, begins(bytes, start..<end, "TCP4") || begins(bytes, start..<end, "TCP6")
            || begins(bytes, start..<end, "UNKNOWN") {
            return .needMore
        } else {
            return .invalid("PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN")
        }
        guard end < bytes.count else { return .needMore }
        guard bytes[end] == UInt8(ascii: " ") else { return .invalid("PROXY v1: fields not separated by one space") }
        // source address, destination address, source port, destination port, CRLF
        let addressField: FieldKind = isIPv6 ? .ipv6Address : .ipv4Address
        let space = UInt8(ascii: " ")
        do throws(LineProblem) {
            let sourceStart = end + 1
            let sourceEnd = try field(bytes, from: sourceStart, addressField, ending: space)
            let destinationStart = sourceEnd + 1
            let destinationEnd = try field(bytes, from: destinationStart, addressField, ending: space)
            let sourcePortStart = destinationEnd + 1
            let sourcePortEnd = try field(bytes, from: sourcePortStart, .port, ending: space)
            let destinationPortStart = sourcePortEnd + 1
            let lineEnd = try field(bytes, from: destinationPortStart, .port, ending: UInt8(ascii: "\r"))
            guard lineEnd + 2 <= v1MaximumLength else { return .invalid("PROXY v1: no CRLF within 107 bytes") }
            guard lineEnd + 1 < bytes.count else { return .needMore }
            guard bytes[lineEnd + 1] == UInt8(ascii: "\n") else { return .invalid("PROXY v1: CR not followed by LF") }
            guard let sourcePort = port(bytes, sourcePortStart..<sourcePortEnd),
                  let destinationPort = port(bytes, destinationPortStart..<lineEnd)
            else { return .invalid("PROXY v1: port is not a number from 0 to 65535") }
            guard let source = address(bytes, sourceStart..<sourceEnd, isIPv6: isIPv6, port: sourcePort),
                  let destination = address(bytes, destinationStart..<destinationEnd, isIPv6: isIPv6, port: destinationPort)
            else { return .invalid("PROXY v1: address does not parse for its family") }
            return .done(ReceivedProxyHeader(source: source, destination: destination), consumed: lineEnd + 2)
        } catch {
            switch error {
            case .needMore: return .needMore
            case .invalid(let reason): return .invalid(reason)
            }
        }
    }

    /// `UNKNOWN`: the rest of the line, whatever it holds, is ignored up to its CRLF.
    static func parseV1Unknown(_ bytes: ByteView, from position: Int) -> ParseOutcome<ReceivedProxyHeader> {
        guard position < bytes.count else { return .needMore }
        guard bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\r") else {
            return .invalid("PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN")
        }
        var index = position
        while index < min(bytes.count, v1MaximumLength) {
            if bytes[index] == UInt8(ascii: "\r") {
                guard index + 1 < v1MaximumLength else { break }
                guard index + 1 < bytes.count else { return .needMore }
                guard bytes[index + 1] == UInt8(ascii: "\n") else { return .invalid("PROXY v1: CR not followed by LF") }
                return .done(ReceivedProxyHeader(), consumed: index + 2)
            }
            index += 1
        }
        return bytes.count >= v1MaximumLength ? .invalid("PROXY v1: no CRLF within 107 bytes") : .needMore
    }

    /// What a field of the line holds: the bytes it may contain and its longest text.
    enum FieldKind {
        case ipv4Address
        case ipv6Address
        case port

        var maximumLength: Int {
            switch self {
            case .ipv4Address: 15
            case .ipv6Address: 45
            case .port: 5
            }
        }

        func accepts(_ byte: UInt8) -> Bool {
            switch self {
            case .ipv4Address: isIPv4TextByte(byte)
            case .ipv6Address: isIPv6TextByte(byte)
            case .port: isDigit(byte)
            }
        }
    }

    /// Scans a non-empty field of `kind`, ended by `terminator` within the 107-byte line; returns the
    /// terminator's index.
    static func field(
        _ bytes: ByteView, from start: Int, _ kind: FieldKind, ending terminator: UInt8
    ) throws(LineProblem) -> Int {
        var index = start
        while index < min(bytes.count, v1MaximumLength) {
            let byte = bytes[index]
            if byte == terminator {
                guard index > start else { throw .invalid("PROXY v1: empty field") }
                return index
            }
            guard kind.accepts(byte) else {
                throw .invalid(byte == UInt8(ascii: " ") ? "PROXY v1: fields not separated by one space" : "PROXY v1: unexpected byte in a field")
            }
            guard index - start < kind.maximumLength else { throw .invalid("PROXY v1: field too long") }
            index += 1
        }
        throw bytes.count >= v1MaximumLength ? .invalid("PROXY v1: no CRLF within 107 bytes") : .needMore
    }

    /// A decimal port without leading zeros ("0" itself is allowed), at most 65535.
    static func port(_ bytes: ByteView, _ range: Range<Int>) -> UInt16? {
        guard range.count <= 5, range.count == 1 || bytes[range.lowerBound] != UInt8(ascii: "0") else { return nil }
        var value = 0
        for index in range { value = value * 10 + Int(bytes[index] - UInt8(ascii: "0")) }
        return value <= 65_535 ? UInt16(value) : nil
    }

    /// The address text in `range` parsed by `inet_pton` for its family (no allocation).
    static func address(_ bytes: ByteView, _ range: Range<Int>, isIPv6: Bool, port: UInt16) -> SocketAddress? {
        SocketAddress(numericHost: bytes.slice(from: range.lowerBound, count: range.count), isIPv6: isIPv6, port: port)
    }

    static func matches(_ bytes: ByteView, _ range: Range<Int>, _ word: StaticString) -> Bool {
        range.count == word.utf8CodeUnitCount && begins(bytes, range, word)
    }

    /// Whether the bytes in `range` are the beginning of `word`.
    static func begins(_ bytes: ByteView, _ range: Range<Int>, _ word: StaticString) -> Bool {
        guard range.count <= word.utf8CodeUnitCount else { return false }
        for offset in 0..<range.count where bytes[range.lowerBound + offset] != word.utf8Start[offset] {
            return false
        }
        return true
    }

    static func isUpperOrDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") || isDigit(byte)
    }

    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    static func isIPv4TextByte(_ byte: UInt8) -> Bool {
        isDigit(byte) || byte == UInt8(ascii: ".")
    }

    static func isIPv6TextByte(_ byte: UInt8) -> Bool {
        isIPv4TextByte(byte) || byte == UInt8(ascii: ":") || byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f")
    }
}
