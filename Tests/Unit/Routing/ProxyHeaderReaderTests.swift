import Glibc
@testable import RingProxy
import XCTest

/// The PROXY header reader on headers recorded from HAProxy (`send-proxy`, `send-proxy-v2`, with TLVs, a
/// health check's LOCAL) and nginx (`proxy_protocol on`), each followed by the client's `hello\n`
/// (Captures/ProxyHeader), and on hand-built headers of every shape the specification allows or forbids.
final class ProxyHeaderReaderTests: XCTestCase {
    private func address(_ text: String) -> SocketAddress { SocketAddress(numeric: text)! }

    private static let payload = Array("hello\n".utf8)

    func testCapturedHeadersGiveTheClientAndStripExactlyTheHeader() throws {
        let cases: [(String, source: String?, destination: String?)] = [
            ("haproxy-v1-ipv4.bin", "127.0.0.1:35138", "127.0.0.1:52927"),
            ("haproxy-v1-ipv6.bin", "[::1]:60562", "[::1]:49644"),
            ("haproxy-v2-ipv4.bin", "127.0.0.1:41328", "127.0.0.1:52624"),
            ("haproxy-v2-ipv6.bin", "[::1]:51404", "[::1]:45527"),
            ("haproxy-v2-tlvs.bin", "127.0.0.1:33228", "127.0.0.1:57243"),
            ("haproxy-v2-local.bin", nil, nil),
            ("nginx-v1-ipv4.bin", "127.0.0.1:55082", "127.0.0.1:54907"),
            ("nginx-v1-ipv6.bin", "[::1]:40174", "[::1]:55120"),
        ]
        for (file, source, destination) in cases {
            let bytes = try RoutingFixtures.capture("ProxyHeader", file)
            guard case .done(let header, let consumed) = ProxyHeaderReader.parse(bytes) else {
                XCTFail("\(file): \(ProxyHeaderReader.parse(bytes))"); continue
            }
            XCTAssertEqual(header.source, source.map(address), file)
            XCTAssertEqual(header.destination, destination.map(address), file)
            let rest = Array(bytes[consumed...])
            XCTAssertEqual(rest, file.contains("local") ? [] : Self.payload, file)
            // Every cut before the header's end needs more; from its end on, the same answer.
            for length in 0..<consumed where ProxyHeaderReader.parse(bytes[..<length]) != .needMore {
                XCTFail("\(file) cut at \(length): \(ProxyHeaderReader.parse(bytes[..<length]))")
            }
            for length in consumed...bytes.count {
                XCTAssertEqual(ProxyHeaderReader.parse(bytes[..<length]), .done(header, consumed: consumed), "\(file) cut at \(length)")
            }
        }
    }

    /// What RingProxy's own `send_proxy` writes, it reads back.
    func testHeadersWrittenBySendProxyReadBack() {
        let pairs = [("192.0.2.1:51234", "198.51.100.7:443"), ("[2001:db8::1]:1", "[2001:db8::ff]:65535")]
        for version in [ProxyProtocolVersion.v1, .v2] {
            for (source, destination) in pairs {
                let header = version.header(source: address(source), destination: address(destination))
                XCTAssertEqual(ProxyHeaderReader.parse(header),
                               .done(ReceivedProxyHeader(source: address(source), destination: address(destination)), consumed: header.count),
                               "\(version) \(source)")
            }
        }
    }

    // MARK: v1

    private func v1(_ line: String) -> ParseOutcome<ReceivedProxyHeader> { ProxyHeaderReader.parse(Array(line.utf8)) }

    func testV1Lines() {
        let tcp4 = "PROXY TCP4 192.0.2.1 198.51.100.7 51234 443\r\n"
        XCTAssertEqual(v1(tcp4 + "GET"),
                       .done(ReceivedProxyHeader(source: address("192.0.2.1:51234"), destination: address("198.51.100.7:443")), consumed: tcp4.utf8.count))
        let tcp6 = "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n"
        XCTAssertEqual(v1(tcp6),
                       .done(ReceivedProxyHeader(source: address("[2001:db8::1]:0"), destination: address("[::ffff:10.0.0.1]:65535")), consumed: tcp6.utf8.count))
        XCTAssertEqual(v1("PROXY UNKNOWN\r\n"), .done(ReceivedProxyHeader(), consumed: 15))
        XCTAssertEqual(v1("PROXY UNKNOWN ffff::1 ::1 1 2\r\nx"), .done(ReceivedProxyHeader(), consumed: 31))
        // The longest line, 107 bytes with its CRLF, is a header; one byte more is not.
        let longest = "PROXY UNKNOWN " + String(repeating: "x", count: 107 - 16) + "\r\n"
        XCTAssertEqual(longest.utf8.count, 107)
        XCTAssertEqual(v1(longest), .done(ReceivedProxyHeader(), consumed: 107))
        XCTAssertEqual(v1("PROXY UNKNOWN " + String(repeating: "x", count: 107 - 15) + "\r\n"), .invalid("PROXY v1: no CRLF within 107 bytes"))
        XCTAssertEqual(v1("PROXY UNKNOWN " + String(repeating: "x", count: 93)), .invalid("PROXY v1: no CRLF within 107 bytes"))
        XCTAssertEqual(v1("PROXY UNKNOWN " + String(repeating: "x", count: 92)), .needMore)
        // The same bound for TCP6 with the longest address texts: 107 bytes is a header, 108 is not, and its
        // CR at byte 107 is refused without waiting for the LF.
        let mapped = "0000:0000:0000:0000:0000:ffff:255.255.255.255"
        let tcp6Longest = "PROXY TCP6 \(mapped.dropFirst()) \(mapped) 1 2\r\n"
        XCTAssertEqual(tcp6Longest.utf8.count, 107)
        XCTAssertEqual(v1(tcp6Longest).value?.source, address("[::ffff:255.255.255.255]:1"))
        XCTAssertEqual(v1("PROXY TCP6 \(mapped) \(mapped) 1 2\r\n"), .invalid("PROXY v1: no CRLF within 107 bytes"))
        XCTAssertEqual(v1("PROXY TCP6 \(mapped) \(mapped) 1 2\r"), .invalid("PROXY v1: no CRLF within 107 bytes"))
    }

    /// A line is refused as soon as it cannot become a header, not when 107 bytes have arrived.
    func testV1LinesThatCannotBecomeHeadersAreInvalid() {
        let cases: [(String, String)] = [
            ("proxy TCP4 ", "no PROXY header signature"),
            ("PROXx TCP4 ", "not a PROXY header: bad v1 signature"),
            ("PROXY\tTCP4", "not a PROXY header: bad v1 signature"),
            ("PROXY TCP5 ", "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN"),
            ("PROXY UDP4 ", "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN"),
            ("PROXY UNKNOWNX\r\n", "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN"),
            ("PROXY  TCP4", "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN"),
            ("PROXY TCP4\r\n", "PROXY v1: fields not separated by one space"),
            ("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "PROXY v1: empty field"),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "PROXY v1: fields not separated by one space"),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "PROXY v1: unexpected byte in a field"),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY v1: unexpected byte in a field"),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "PROXY v1: CR not followed by LF"),
            ("PROXY TCP4 ::1 ", "PROXY v1: unexpected byte in a field"),
            ("PROXY TCP4 1.2.3.4.5.6.7.8.9", "PROXY v1: field too long"),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 123456", "PROXY v1: field too long"),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n", "PROXY v1: port is not a number from 0 to 65535"),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n", "PROXY v1: port is not a number from 0 to 65535"),
            ("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "PROXY v1: address does not parse for its family"),
            ("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "PROXY v1: address does not parse for its family"),
            ("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: address does not parse for its family"),
            ("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "PROXY v1: address does not parse for its family"),
            ("PROXY TCP6 ::1 :::1 1 2\r\n", "PROXY v1: address does not parse for its family"),
            ("PROXY TCP6 ::g", "PROXY v1: unexpected byte in a field"),
            ("PROXY UNKNOWN\rX", "PROXY v1: CR not followed by LF"),
        ]
        for (line, reason) in cases {
            XCTAssertEqual(v1(line), .invalid(reason), line.debugDescription)
        }
    }

    func testV1PrefixesNeedMore() {
        let line = Array("PROXY TCP6 2001:db8::1 2001:db8::2 51234 443\r\n".utf8)
        for length in 0..<line.count {
            XCTAssertEqual(ProxyHeaderReader.parse(line[..<length]), .needMore, "cut at \(length)")
        }
        for partial in ["P", "PROXY", "PROXY T", "PROXY TC", "PROXY U", "PROXY UNKNOW", "PROXY UNKNOWN", "PROXY UNKNOWN \r"] {
            XCTAssertEqual(v1(partial), .needMore, partial)
        }
    }

    // MARK: v2

    private static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    private func v2(_ family: UInt8, _ payload: [UInt8], command: UInt8 = 0x21, length: Int? = nil) -> [UInt8] {
        let length = length ?? payload.count
        return Self.signature + [command, family, UInt8(length >> 8), UInt8(length & 0xFF)] + payload
    }

    private let ipv4Block: [UInt8] = [192, 0, 2, 1, 198, 51, 100, 7, 0xC8, 0x22, 0x01, 0xBB]
    private var ipv6Block: [UInt8] {
        [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1]
            + [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [2] + [0xC8, 0x22, 0x01, 0xBB]
    }

    func testV2Families() {
        let ipv4 = ReceivedProxyHeader(source: address("192.0.2.1:51234"), destination: address("198.51.100.7:443"))
        let ipv6 = ReceivedProxyHeader(source: address("[2001:db8::1]:51234"), destination: address("[2001:db8::2]:443"))
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x11, ipv4Block) + [1, 2]), .done(ipv4, consumed: 28), "TCP over IPv4")
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x12, ipv4Block)), .done(ipv4, consumed: 28), "UDP over IPv4")
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x21, ipv6Block)), .done(ipv6, consumed: 52), "TCP over IPv6")
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x22, ipv6Block)), .done(ipv6, consumed: 52), "UDP over IPv6")
        let unix = [UInt8](repeating: 0x41, count: 216)
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x31, unix)), .done(ReceivedProxyHeader(), consumed: 232), "UNIX stream")
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x32, unix)), .done(ReceivedProxyHeader(), consumed: 232), "UNIX datagram")
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x00, [])), .done(ReceivedProxyHeader(), consumed: 16), "PROXY with UNSPEC")
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x00, [], command: 0x20)), .done(ReceivedProxyHeader(), consumed: 16), "LOCAL")
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x11, ipv4Block + [0xEE, 0, 9], command: 0x20)), .done(ReceivedProxyHeader(), consumed: 31),
                       "LOCAL ignores its addresses and whatever follows them")
    }

    func testV2TLVsAreSkippedWithinTheBound() {
        let tlvs: [UInt8] = [0x01, 0, 2, 0x68, 0x32] + [0x04, 0, 0] + [0x20, 0, 5, 0x01, 0, 0, 0, 0]
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x11, ipv4Block + tlvs)).value?.source, address("192.0.2.1:51234"))
        // The whole payload may be 2048 bytes (one NOOP TLV here), not one more.
        let fill = 2048 - ipv4Block.count - 3
        let largest = v2(0x11, ipv4Block + [0x04, UInt8(fill >> 8), UInt8(fill & 0xFF)] + [UInt8](repeating: 0, count: fill))
        XCTAssertEqual(largest.count, ProxyHeaderReader.maximumLength)
        XCTAssertEqual(ProxyHeaderReader.parse(largest).value?.source, address("192.0.2.1:51234"))
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x11, [], length: 2049)), .invalid("PROXY v2: header longer than 2064 bytes"))
        XCTAssertEqual(ProxyHeaderReader.parse(v2(0x11, [], length: 0xFFFF)), .invalid("PROXY v2: header longer than 2064 bytes"))
        for bad: [UInt8] in [[0x01], [0x01, 0], [0x01, 0, 3, 0x68, 0x32], [0x01, 0, 1, 0x68, 0x32]] {
            XCTAssertEqual(ProxyHeaderReader.parse(v2(0x11, ipv4Block + bad)), .invalid("PROXY v2: malformed TLV"), "\(bad)")
        }
    }

    func testV2HeadersThatCannotBeValidAreInvalid() {
        let cases: [(String, [UInt8], String)] = [
            ("version 1", v2(0x11, ipv4Block, command: 0x11), "PROXY v2: version is not 2"),
            ("version 3", v2(0x11, ipv4Block, command: 0x31), "PROXY v2: version is not 2"),
            ("command 2", v2(0x11, ipv4Block, command: 0x22), "PROXY v2: command is not LOCAL or PROXY"),
            ("family 4", v2(0x41, ipv4Block), "PROXY v2: unknown family or protocol"),
            ("protocol 3", v2(0x13, ipv4Block), "PROXY v2: unknown family or protocol"),
            ("INET with UNSPEC protocol", v2(0x10, ipv4Block), "PROXY v2: unknown family or protocol"),
            ("short IPv4 block", v2(0x11, Array(ipv4Block[..<11])), "PROXY v2: address block shorter than its family"),
            ("IPv4 length for IPv6", v2(0x21, ipv4Block), "PROXY v2: address block shorter than its family"),
            ("short UNIX block", v2(0x31, [UInt8](repeating: 0, count: 215)), "PROXY v2: address block shorter than its family"),
            ("signature off by a byte", [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x55], "not a PROXY header: bad v2 signature"),
            ("early version check", Self.signature + [0x11], "PROXY v2: version is not 2"),
            ("early family check", Self.signature + [0x21, 0xFF], "PROXY v2: unknown family or protocol"),
        ]
        for (name, bytes, reason) in cases {
            XCTAssertEqual(ProxyHeaderReader.parse(bytes), .invalid(reason), name)
        }
    }

    func testV2PrefixesNeedMore() {
        let header = v2(0x21, ipv6Block + [0x02, 0, 3, 0x61, 0x62, 0x63])
        for length in 0..<header.count {
            XCTAssertEqual(ProxyHeaderReader.parse(header[..<length]), .needMore, "cut at \(length)")
        }
    }

    // MARK: neither

    func testBytesWithoutASignatureAreInvalid() {
        for bytes in [Array("GET / HTTP/1.1\r\n".utf8), [0x16, 3, 1], [0], [0xFF], Array("\r\n\r\n".utf8) + [1]] {
            XCTAssertTrue(ProxyHeaderReader.parse(bytes).isInvalid, "\(bytes)")
        }
        XCTAssertEqual(ProxyHeaderReader.parse([UInt8]()), .needMore)
    }

    /// Every byte of real headers replaced by other values: an answer without a trap or an over-read, and a
    /// done header never claims more bytes than it was given, nor more than the maximum.
    func testEveryByteCorruptedNeverCrashes() throws {
        for file in ["haproxy-v1-ipv6.bin", "haproxy-v2-tlvs.bin", "haproxy-v2-ipv6.bin"] {
            let original = try RoutingFixtures.capture("ProxyHeader", file)
            for offset in original.indices {
                for value: UInt8 in [0x00, 0x20, 0x0D, 0x0A, 0x7F, 0xFF, original[offset] &+ 1, original[offset] &- 1] {
                    var bytes = original
                    bytes[offset] = value
                    if case .done(_, let consumed) = ProxyHeaderReader.parse(bytes) {
                        XCTAssertLessThanOrEqual(consumed, bytes.count, "\(file) at \(offset)")
                        XCTAssertLessThanOrEqual(consumed, ProxyHeaderReader.maximumLength)
                    }
                }
            }
        }
    }
}
