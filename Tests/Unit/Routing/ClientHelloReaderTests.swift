@testable import RingProxy
import XCTest

/// The ClientHello reader on hellos recorded from real clients (Captures/ClientHello) and on hand-built ones:
/// the server name and ALPN, every way a hello can arrive in pieces, and every way it can be wrong.
final class ClientHelloReaderTests: XCTestCase {
    /// Each capture and what it asked for.
    private static let expected: [(file: String, serverName: String?, alpn: [String])] = [
        ("openssl-sni-alpn.bin", "api.example.com", ["h2", "http/1.1"]),
        ("curl-resolve.bin", "api.example.com", ["h2", "http/1.1"]),
        ("openssl-no-sni.bin", nil, []),
        ("openssl-tls12.bin", "legacy.example.com", []),
        ("openssl-ffdhe8192-share.bin", "dh.example.com", []),
        ("openssl-large-alpn.bin", "big.example.com", (0..<200).map { String(format: "proto-%03d-", $0) + String(repeating: "x", count: 40) }),
        ("openssl-two-records.bin", "two.example.com", (0..<340).map { String(format: "proto-%03d-", $0) + String(repeating: "x", count: 40) }),
    ]

    private func capture(_ name: String) throws -> [UInt8] { try RoutingFixtures.capture("ClientHello", name) }

    func testCapturedHellosGiveTheirServerNameAndALPN() throws {
        for (file, serverName, alpn) in Self.expected {
            let bytes = try capture(file)
            XCTAssertEqual(ClientHelloReader.parse(bytes), .done(ClientHello(serverName: serverName, alpn: alpn), consumed: 0), file)
        }
    }

    /// The captures cover the shapes the issue names: a hello over 8 KiB, and one that OpenSSL itself split
    /// over two records (16384 + 1278 bytes).
    func testCapturesIncludeALargeHelloAndOneSplitAcrossTwoRecords() throws {
        XCTAssertGreaterThan(try capture("openssl-large-alpn.bin").count, 8192)
        let split = try capture("openssl-two-records.bin")
        XCTAssertEqual(Array(split[3..<5]), [0x40, 0x00], "the first record is 16384 bytes")
        XCTAssertEqual(split[16389], 22, "a second handshake record follows it")
    }

    /// Fed one byte at a time (a client writing its hello byte by byte, or a network cutting it anywhere):
    /// every prefix needs more, and the last byte completes it.
    func testEveryPrefixOfEveryCaptureNeedsMore() throws {
        for (file, _, _) in Self.expected {
            let bytes = try capture(file)
            for length in 0..<bytes.count {
                let outcome = ClientHelloReader.parse(bytes[..<length])
                guard outcome == .needMore else { return XCTFail("\(file) cut at \(length): \(outcome)") }
            }
        }
    }

    /// What follows the hello in the same recv (a client's early data, a change_cipher_spec) does not matter.
    func testBytesAfterTheHelloAreIgnored() throws {
        let bytes = try capture("openssl-sni-alpn.bin")
        let expected = ClientHelloReader.parse(bytes)
        XCTAssertEqual(ClientHelloReader.parse(bytes + [20, 3, 3, 0, 1, 1]), expected)
        XCTAssertEqual(ClientHelloReader.parse(bytes + [23, 3]), expected)
    }

    /// The same handshake message re-framed into records of many sizes reads the same: a message split over
    /// records (RFC 8446 §5.1 allows any split, even inside the handshake header).
    func testHelloSplitAcrossRecordsOfAnySize() throws {
        for file in ["openssl-sni-alpn.bin", "curl-resolve.bin", "openssl-two-records.bin"] {
            let original = try capture(file)
            let expected = ClientHelloReader.parse(original)
            let message = TLSBuilder.handshake(of: original)
            for size in [1, 2, 3, 4, 5, 7, 64, 100, 333, 4096, 16384] {
                let records = TLSBuilder.records(message, size: size)
                XCTAssertEqual(ClientHelloReader.parse(records), expected, "\(file) in records of \(size)")
                if records.count < 4000 {
                    for length in 0..<records.count where ClientHelloReader.parse(records[..<length]) != .needMore {
                        return XCTFail("\(file) in records of \(size), cut at \(length)")
                    }
                }
            }
        }
    }

    /// An 8 KiB hello as post-quantum key shares make them (Debian's OpenSSL 3.0 has no ML-KEM, so the size
    /// comes from RFC 7685 padding), in one record and in 512-byte records, cut at every length.
    func testEightKiBHelloInOneRecordAndInManyReads() {
        let message = TLSBuilder.hello([TLSBuilder.serverName("pq.example.com"), TLSBuilder.alpn(["h2"]), TLSBuilder.padding(8100)])
        XCTAssertGreaterThan(message.count, 8192)
        for records in [TLSBuilder.records(message, size: 16384), TLSBuilder.records(message, size: 512)] {
            XCTAssertEqual(ClientHelloReader.parse(records), .done(ClientHello(serverName: "pq.example.com", alpn: ["h2"]), consumed: 0))
            for length in 0..<records.count where ClientHelloReader.parse(records[..<length]) != .needMore {
                return XCTFail("cut at \(length)")
            }
        }
    }

    func testServerNameIsLowercasedWithoutTrailingDot() {
        let hello = TLSBuilder.records(TLSBuilder.hello([TLSBuilder.serverName("API.Example.COM.")]), size: 16384)
        XCTAssertEqual(ClientHelloReader.parse(hello).value?.serverName, "api.example.com")
    }

    /// "No SNI" is a well-formed hello that names no host: done, with serverName nil.
    func testHellosWithoutAHostNameAreDoneWithNoServerName() {
        let cases: [(String, [[UInt8]]?)] = [
            ("no extensions block", nil),
            ("empty extensions block", []),
            ("no server_name extension", [TLSBuilder.alpn(["h2"])]),
            ("server_name with only an unknown name type", [TLSBuilder.serverName([(7, Array("x".utf8))])]),
        ]
        for (name, extensions) in cases {
            let outcome = ClientHelloReader.parse(TLSBuilder.records(TLSBuilder.hello(extensions), size: 16384))
            guard case .done(let hello, consumed: 0) = outcome else { XCTFail("\(name): \(outcome)"); continue }
            XCTAssertNil(hello.serverName, name)
        }
    }

    /// Bytes that are not a TLS handshake are invalid at their first bytes, not waited for.
    func testNonTLSBytesAreInvalidAtOnce() {
        let cases: [(String, [UInt8], String)] = [
            ("HTTP", Array("GET / HTTP/1.1\r\n".utf8), "not TLS: not a handshake record"),
            ("SSLv2-style hello", [0x80, 0x2E, 0x01, 0x03, 0x01, 0x00, 0x15], "not TLS: not a handshake record"),
            ("application data", [23, 3, 3, 0, 10], "not TLS: not a handshake record"),
            ("record version 2.0", [22, 2], "not TLS: record version is not 3.x"),
            ("record version 4.1", [22, 4, 1, 0, 5], "not TLS: record version is not 3.x"),
            ("a ServerHello", [22, 3, 3, 0, 50, 2], "first handshake message is not a ClientHello"),
            ("empty record", [22, 3, 1, 0, 0], "empty handshake record"),
            ("record over 18 KiB", [22, 3, 1, 0x48, 0x01], "record longer than 18 KiB"),
            ("hello over 18 KiB", [22, 3, 1, 0x40, 0x00, 1, 0x00, 0x48, 0x01], "ClientHello longer than 18 KiB"),
        ]
        for (name, bytes, reason) in cases {
            XCTAssertEqual(ClientHelloReader.parse(bytes), .invalid(reason), name)
        }
        XCTAssertEqual(ClientHelloReader.parse([UInt8]()), .needMore)
        XCTAssertEqual(ClientHelloReader.parse([22]), .needMore)
        XCTAssertEqual(ClientHelloReader.parse([22, 3, 1, 0x48, 0x00]), .needMore, "18 KiB exactly is allowed")
    }

    func testAnotherRecordTypeBeforeTheHelloEndsIsInvalid() {
        let message = TLSBuilder.hello([TLSBuilder.serverName("a.example.com")])
        var records = TLSBuilder.records(Array(message[..<50]), size: 16384)
        records += [21, 3, 3, 0, 2, 2, 40]  // an alert in the middle
        records += TLSBuilder.records(Array(message[50...]), size: 16384)
        XCTAssertEqual(ClientHelloReader.parse(records), .invalid("another record type before the ClientHello ends"))
        XCTAssertEqual(ClientHelloReader.parse(records[..<55]), .needMore)
    }

    /// Each length field of the hello, wrong in each direction: invalid with the field's reason, never a
    /// read past it. (A handshake length made longer than the bytes is a hello still arriving.)
    func testCorruptedLengthsAreInvalid() {
        let hello = TLSBuilder.hello([TLSBuilder.serverName("a.example.com"), TLSBuilder.alpn(["h2", "http/1.1"])])
        let records = TLSBuilder.records(hello, size: 16384)
        // Offsets in `records`: 5-byte record header, 4-byte handshake header, version 2, random 32.
        let sessionID = 5 + 4 + 2 + 32
        let cipherSuites = sessionID + 1 + 32
        let compression = cipherSuites + 2 + 4
        let extensions = compression + 1 + 1
        let serverNameList = extensions + 2 + 4
        let hostName = serverNameList + 2 + 1
        let alpnList = hostName + 2 + 13 + 4
        func corrupt(_ offset: Int, _ values: [UInt8]) -> ParseOutcome<ClientHello> {
            var bytes = records
            bytes.replaceSubrange(offset..<offset + values.count, with: values)
            return ClientHelloReader.parse(bytes)
        }
        XCTAssertEqual(corrupt(sessionID, [33]), .invalid("session id longer than 32 bytes"))
        XCTAssertEqual(corrupt(cipherSuites, [0, 3]), .invalid("bad cipher suites length"))
        XCTAssertEqual(corrupt(cipherSuites, [0, 0]), .invalid("bad cipher suites length"))
        XCTAssertEqual(corrupt(cipherSuites, [0xFF, 0xFE]), .invalid("cipher suites run past the ClientHello"))
        XCTAssertEqual(corrupt(compression, [0]), .invalid("no compression method"))
        XCTAssertEqual(corrupt(extensions, [0, 41]), .invalid("extensions length does not fill the ClientHello"))
        XCTAssertEqual(corrupt(extensions + 2 + 2, [0xFF, 0xFF]), .invalid("extension runs past the ClientHello"))
        XCTAssertEqual(corrupt(serverNameList, [0, 15]), .invalid("server_name list length does not fill its extension"))
        XCTAssertEqual(corrupt(hostName, [0, 14]), .invalid("server name runs past its extension"))
        XCTAssertEqual(corrupt(hostName, [0, 0]), .invalid("empty server name"))
        XCTAssertEqual(corrupt(alpnList, [0, 11]), .invalid("ALPN list length does not fill its extension"))
        XCTAssertEqual(corrupt(alpnList + 2, [3]), .invalid("ALPN protocol name runs past its extension"))
        XCTAssertEqual(corrupt(alpnList + 2, [0]), .invalid("empty ALPN protocol name"))
        XCTAssertEqual(corrupt(9, [2]), .invalid("ClientHello version is not 3.x"))
        XCTAssertEqual(corrupt(3, [0x40, 0x00]), ClientHelloReader.parse(records), "the hello is whole: the record's rest is not awaited")
        XCTAssertEqual(corrupt(6, [0x00, 0x40, 0x00]), .needMore, "a longer hello waits for the next record")
        XCTAssertEqual(corrupt(6, [0x00, 0x00, 0x10]), .invalid("ClientHello too short"))
    }

    func testMalformedServerNamesAreInvalid() {
        let cases: [(String, [UInt8], String)] = [
            ("two server_name extensions", TLSBuilder.serverName("a.com") + TLSBuilder.serverName("b.com"), "two server_name extensions"),
            ("two ALPN extensions", TLSBuilder.alpn(["h2"]) + TLSBuilder.alpn(["h2"]), "two ALPN extensions"),
            ("two host names", TLSBuilder.serverName([(0, Array("a.com".utf8)), (0, Array("b.com".utf8))]), "two host names in server_name"),
            ("empty host name", TLSBuilder.serverName(""), "empty server name"),
            ("a lone dot", TLSBuilder.serverName("."), "server name has an empty label"),
            ("empty label", TLSBuilder.serverName("a..com"), "server name has an empty label"),
            ("space", TLSBuilder.serverName("a b.com"), "server name is not a host name"),
            ("NUL byte", TLSBuilder.serverName([(0, Array("a.com".utf8) + [0] + Array("evil".utf8))]), "server name is not a host name"),
            ("UTF-8", TLSBuilder.serverName("é.com"), "server name is not a host name"),
            ("label of 64", TLSBuilder.serverName(String(repeating: "a", count: 64) + ".com"), "server name label longer than 63 bytes"),
            ("name of 254", TLSBuilder.serverName(Array(repeating: String(repeating: "a", count: 63), count: 3).joined(separator: ".") + "." + String(repeating: "b", count: 62)),
             "server name longer than 253 bytes"),
            ("empty server_name extension", TLSBuilder.extensionBlock(0, []), "truncated server_name list"),
            ("empty ALPN extension", TLSBuilder.extensionBlock(16, []), "truncated ALPN list"),
        ]
        for (name, extensions, reason) in cases {
            XCTAssertEqual(ClientHelloReader.parse(TLSBuilder.records(TLSBuilder.hello([extensions]), size: 16384)), .invalid(reason), name)
        }
        let longest = Array(repeating: String(repeating: "a", count: 63), count: 3).joined(separator: ".") + "." + String(repeating: "b", count: 61)
        XCTAssertEqual(longest.utf8.count, 253)
        XCTAssertEqual(ClientHelloReader.parse(TLSBuilder.records(TLSBuilder.hello([TLSBuilder.serverName(longest + ".")]), size: 16384)).value?.serverName,
                       longest, "253 bytes and a trailing dot is the longest name")
    }

    /// Every byte of a real hello replaced by other values: whatever the answer, it comes without a trap or
    /// an over-read (the buffer is exactly the hello), and a done hello's server name stays a host name.
    func testEveryByteCorruptedNeverCrashes() throws {
        let original = try capture("curl-resolve.bin")
        var answers = [0, 0, 0]
        for offset in original.indices {
            for value: UInt8 in [0x00, 0x01, 0x7F, 0xFF, original[offset] &+ 1, original[offset] &- 1] {
                var bytes = original
                bytes[offset] = value
                switch ClientHelloReader.parse(bytes) {
                case .needMore: answers[0] += 1
                case .done(let hello, consumed: 0):
                    answers[1] += 1
                    if let name = hello.serverName { XCTAssertNotNil(ServerNamePattern(name), "offset \(offset): \(name)") }
                case .done(_, let consumed): XCTFail("consumed \(consumed)")
                case .invalid: answers[2] += 1
                }
            }
        }
        XCTAssertTrue(answers.allSatisfy { $0 > 0 }, "each answer occurs: \(answers)")
    }
}
