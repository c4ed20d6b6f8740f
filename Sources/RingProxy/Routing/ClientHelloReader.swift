/// Reads the server name (SNI) and ALPN protocols from a TLS ClientHello without terminating TLS, for routing
/// on the first bytes of a connection (HAProxy's `req.ssl_sni`, nginx's `ssl_preread`).
///
/// The hello may arrive in any number of recvs and, as a handshake message, be split over several handshake
/// records (a hello of 2–8 KiB with post-quantum key shares, or one over 16 KiB, which needs two records).
/// `parse` takes everything received so far and answers:
/// - `.needMore` while the bytes are a valid beginning of a hello (the caller's preread size and time limits
///   end the wait);
/// - `.done(hello, consumed: 0)` once the whole hello is there and well-formed: the bytes are forwarded to
///   the backend unchanged. `serverName` is nil ("no SNI") for a hello without extensions, without the
///   server_name extension, or whose server_name list has no `host_name` entry: all legal TLS;
/// - `.invalid(reason)` for anything that is not a well-formed TLS hello: bytes that are not a TLS handshake
///   record (first byte not 22, record version not 3.x, which includes SSLv2-style hellos and plain HTTP),
///   a first handshake message that is not a ClientHello, a record or hello longer than the caps below, an
///   empty record, another record type before the hello ends, and any length inside the hello that does not
///   fit its field (session id, cipher suites, compression methods, extensions, server_name, ALPN), a
///   duplicated server_name or ALPN extension, two host names, or a host name that is not a DNS name.
///   Whether such a client gets a default route or is closed is the routing stage's decision.
///
/// Every length is checked against the bytes present before it is used; the parser reads nothing outside
/// `bytes` and allocates only the result's strings.
public enum ClientHelloReader {
    /// The longest record accepted: 2^14 bytes of plaintext (RFC 8446 §5.1) plus the 2048 bytes of slack TLS
    /// allows a ciphertext record. A longer length is not TLS.
    public static let maximumRecordLength = 16_384 + 2_048
    /// The longest ClientHello body accepted. Real hellos are 200 bytes to 8 KiB; a longer one is refused
    /// rather than waited for (the caller's preread limit, 16 KiB by default, usually ends it sooner).
    public static let maximumHelloLength = 16_384 + 2_048

    static let handshakeRecord: UInt8 = 22
    static let clientHelloType: UInt8 = 1
    static let serverNameExtension = 0
    static let alpnExtension = 16
    static let hostNameType: UInt8 = 0

    public static func parse(_ bytes: ByteView) -> ParseOutcome<ClientHello> {
        switch frame(bytes) {
        case .needMore:
            return .needMore
        case .invalid(let reason):
            return .invalid(reason)
        case .done(let messageLength, _):
            do throws(MalformedInput) {
                return .done(try readHello(bytes, messageLength: messageLength), consumed: 0)
            } catch {
                return .invalid(error.reason)
            }
        }
    }

    /// Walks the record headers: `.done(length)` with the handshake message's length (header included) once
    /// all of it is present, `.needMore` before, `.invalid` as soon as a header or the message's own header
    /// cannot be TLS.
    static func frame(_ bytes: ByteView) -> ParseOutcome<Int> {
        var position = 0
        var handshakeBytes = 0
        var messageLength = -1  // 4 + the hello's length, once its header has arrived
        while position < bytes.count {
            guard bytes[position] == handshakeRecord else {
                return .invalid(position == 0 ? "not TLS: not a handshake record" : "another record type before the ClientHello ends")
            }
            guard position + 1 >= bytes.count || bytes[position + 1] == 3 else {
                return .invalid("not TLS: record version is not 3.x")
            }
            guard position + 5 <= bytes.count else { return .needMore }
            let recordLength = Int(bytes[position + 3]) << 8 | Int(bytes[position + 4])
            guard recordLength > 0 else { return .invalid("empty handshake record") }
            guard recordLength <= maximumRecordLength else { return .invalid("record longer than 18 KiB") }
            let fragment = position + 5
            let present = min(recordLength, bytes.count - fragment)
            if handshakeBytes == 0, present > 0, bytes[fragment] != clientHelloType {
                return .invalid("first handshake message is not a ClientHello")
            }
            handshakeBytes += present
            if messageLength < 0, handshakeBytes >= 4 {
                var cursor = HandshakeCursor(records: bytes, limit: 4)
                do throws(MalformedInput) {
                    try cursor.skip(1, or: "")
                    let helloLength = try cursor.uint24(or: "")
                    guard helloLength <= maximumHelloLength else { return .invalid("ClientHello longer than 18 KiB") }
                    messageLength = 4 + helloLength
                } catch {
                    return .needMore  // unreachable: four handshake bytes are present
                }
            }
            if messageLength >= 0, handshakeBytes >= messageLength { return .done(messageLength, consumed: 0) }
            guard present == recordLength else { return .needMore }
            position = fragment + recordLength
        }
        return .needMore
    }

    /// Reads the hello whose `messageLength` bytes (handshake header included) are all present.
    static func readHello(_ bytes: ByteView, messageLength: Int) throws(MalformedInput) -> ClientHello {
        var cursor = HandshakeCursor(records: bytes, limit: messageLength)
        try cursor.skip(4, or: "truncated handshake header")
        let major = try cursor.byte(or: "ClientHello too short")
        guard major == 3 else { throw MalformedInput("ClientHello version is not 3.x") }
        try cursor.skip(1 + 32, or: "ClientHello too short")
        let sessionID = Int(try cursor.byte(or: "ClientHello too short"))
        guard sessionID <= 32 else { throw MalformedInput("session id longer than 32 bytes") }
        try cursor.skip(sessionID, or: "session id runs past the ClientHello")
        let cipherSuites = try cursor.uint16(or: "ClientHello too short")
        guard cipherSuites >= 2, cipherSuites % 2 == 0 else { throw MalformedInput("bad cipher suites length") }
        try cursor.skip(cipherSuites, or: "cipher suites run past the ClientHello")
        let compression = Int(try cursor.byte(or: "ClientHello too short"))
        guard compression >= 1 else { throw MalformedInput("no compression method") }
        try cursor.skip(compression, or: "compression methods run past the ClientHello")
        var hello = ClientHello()
        if cursor.remaining == 0 { return hello }  // no extensions at all (SSL 3.0, old TLS clients)
        let extensionsLength = try cursor.uint16(or: "truncated extensions length")
        guard extensionsLength == cursor.remaining else { throw MalformedInput("extensions length does not fill the ClientHello") }
        var sawServerName = false
        var sawALPN = false
        while cursor.remaining > 0 {
            let type = try cursor.uint16(or: "truncated extension header")
            let length = try cursor.uint16(or: "truncated extension header")
            guard var body = cursor.field(length) else { throw MalformedInput("extension runs past the ClientHello") }
            try cursor.skip(length, or: "extension runs past the ClientHello")
            switch type {
            case serverNameExtension:
                guard !sawServerName else { throw MalformedInput("two server_name extensions") }
                sawServerName = true
                hello.serverName = try readServerName(&body)
            case alpnExtension:
                guard !sawALPN else { throw MalformedInput("two ALPN extensions") }
                sawALPN = true
                hello.alpn = try readALPN(&body)
            default:
                break
            }
        }
        return hello
    }

    /// RFC 6066 §3: a list (2-byte length, not empty) of (name_type, 2-byte length, name); the host_name, if any.
    static func readServerName(_ body: inout HandshakeCursor) throws(MalformedInput) -> String? {
        let listLength = try body.uint16(or: "truncated server_name list")
        guard listLength > 0, listLength == body.remaining else { throw MalformedInput("server_name list length does not fill its extension") }
        var hostName: String?
        while body.remaining > 0 {
            let type = try body.byte(or: "truncated server_name entry")
            let length = try body.uint16(or: "truncated server_name entry")
            guard let name = body.field(length) else { throw MalformedInput("server name runs past its extension") }
            try body.skip(length, or: "server name runs past its extension")
            guard type == hostNameType else { continue }
            guard hostName == nil else { throw MalformedInput("two host names in server_name") }
            hostName = try readHostName(name, length: length)
        }
        return hostName
    }

    /// The host name, checked as a DNS name (letters, digits, '-', '_', non-empty labels, at most 253 bytes
    /// without the trailing dot), lowercased, without the trailing dot.
    static func readHostName(_ name: HandshakeCursor, length: Int) throws(MalformedInput) -> String {
        var check = name
        var labelLength = 0
        var kept = 0  // bytes before a trailing dot
        for index in 0..<length {
            let byte = try check.byte(or: "server name runs past its extension")
            if byte == UInt8(ascii: ".") {
                guard labelLength > 0 else { throw MalformedInput("server name has an empty label") }
                labelLength = 0
                if index == length - 1 { break }
            } else {
                guard isHostNameByte(byte) else { throw MalformedInput("server name is not a host name") }
                labelLength += 1
                guard labelLength <= 63 else { throw MalformedInput("server name label longer than 63 bytes") }
            }
            kept = index + 1
        }
        guard kept > 0 else { throw MalformedInput("empty server name") }
        guard kept <= 253 else { throw MalformedInput("server name longer than 253 bytes") }
        var source = name
        return try readString(&source, count: kept, lowercased: true)
    }

    /// `count` bytes from the cursor as a string (invalid UTF-8 repaired with replacement characters), decoded
    /// as they are read: a name of up to 15 bytes allocates nothing, a longer one only its string.
    static func readString(_ cursor: inout HandshakeCursor, count: Int, lowercased: Bool) throws(MalformedInput) -> String {
        guard count <= cursor.remaining else { throw MalformedInput("field runs past its extension") }
        var bytes = FieldBytes(cursor: cursor, left: count, lowercased: lowercased)
        var text = ""
        text.reserveCapacity(count)
        var decoder = UTF8()
        decoding: while true {
            switch decoder.decode(&bytes) {
            case .scalarValue(let scalar): text.unicodeScalars.append(scalar)
            case .error: text.unicodeScalars.append("\u{FFFD}")
            case .emptyInput: break decoding
            }
        }
        if let failure = bytes.failure { throw failure }
        cursor = bytes.cursor
        return text
    }

    /// The next `left` bytes of a cursor, one at a time, ASCII letters lowercased if asked.
    struct FieldBytes: IteratorProtocol {
        var cursor: HandshakeCursor
        var left: Int
        let lowercased: Bool
        var failure: MalformedInput?

        mutating func next() -> UInt8? {
            guard left > 0, failure == nil else { return nil }
            do throws(MalformedInput) {
                let byte = try cursor.byte(or: "field runs past its extension")
                left -= 1
                return lowercased && byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            } catch {
                failure = error
                return nil
            }
        }
    }

    static func isHostNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    /// RFC 7301 §3.1: a list (2-byte length, not empty) of non-empty names, each with a 1-byte length.
    static func readALPN(_ body: inout HandshakeCursor) throws(MalformedInput) -> [String] {
        let listLength = try body.uint16(or: "truncated ALPN list")
        guard listLength > 0, listLength == body.remaining else { throw MalformedInput("ALPN list length does not fill its extension") }
        var protocols: [String] = []
        while body.remaining > 0 {
            let length = Int(try body.byte(or: "truncated ALPN entry"))
            guard length > 0 else { throw MalformedInput("empty ALPN protocol name") }
            guard body.remaining >= length else { throw MalformedInput("ALPN protocol name runs past its extension") }
            protocols.append(try readString(&body, count: length, lowercased: false))
        }
        return protocols
    }
}
