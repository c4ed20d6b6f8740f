import RingProxy
import XCTest

/// CIDR blocks and lists for source rules and trusted PROXY senders.
final class AddressBlockTests: XCTestCase {
    private func client(_ host: String) -> SocketAddress { SocketAddress(numericHost: host, port: 40_000)! }

    private func block(_ text: String) -> AddressBlock { AddressBlock(text)! }

    func testBlocksParseAndPrintInCIDRForm() {
        let cases: [(String, String)] = [
            ("10.0.0.0/8", "10.0.0.0/8"), ("192.0.2.7", "192.0.2.7/32"), ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1/128", "::1/128"), ("::1", "::1/128"), ("2001:DB8::/32", "2001:db8::/32"), ("::/0", "::/0"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"), ("::ffff:192.0.2.7", "192.0.2.7/32"), ("::ffff:0:0/96", "0.0.0.0/0"),
            ("fe80::/10", "fe80::/10"), ("2001:db8::8000:0:0:0/65", "2001:db8:0:0:8000::/65"),
        ]
        for (text, printed) in cases {
            XCTAssertEqual(AddressBlock(text)?.description, printed, text)
        }
        XCTAssertEqual(block("::ffff:10.0.0.0/104"), block("10.0.0.0/8"), "a mapped block is the IPv4 block")
        XCTAssertEqual(block("192.0.2.7"), block("192.0.2.7/32"))
        XCTAssertEqual(block("10.0.0.0/8").prefixLength, 8)
    }

    func testMalformedBlocksAreRefused() {
        for text in ["", "10.0.0.0/33", "::1/129", "10.0.0.0/", "/8", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8",
                     " 10.0.0.0/8", "10.0.0.0/8 ", "10.0.0.0/8/9", "10.0.0", "10.0.0.0.0", "example.com", "fe80::1%lo", "[::1]/128",
                     "10.0.0.0/1000", "10.0.0.1/8", "192.0.2.128/24", "2001:db8::1/64", "::ffff:10.0.0.1/104", "::1/0", "::ffff:0:0/95"] {
            XCTAssertNil(AddressBlock(text), "'\(text)'")
        }
    }

    func testIPv4BlocksMatchTheirRangeOnly() {
        let private10 = block("10.0.0.0/8")
        XCTAssertTrue(private10.contains(client("10.0.0.0")))
        XCTAssertTrue(private10.contains(client("10.255.255.255")))
        XCTAssertFalse(private10.contains(client("11.0.0.0")))
        XCTAssertFalse(private10.contains(client("9.255.255.255")))
        let host = block("192.0.2.7")
        XCTAssertTrue(host.contains(client("192.0.2.7")))
        XCTAssertFalse(host.contains(client("192.0.2.6")))
        XCTAssertTrue(block("0.0.0.0/0").contains(client("203.0.113.9")))
        XCTAssertTrue(block("172.16.0.0/12").contains(client("172.31.255.255")))
        XCTAssertFalse(block("172.16.0.0/12").contains(client("172.32.0.0")))
        XCTAssertTrue(block("127.0.0.0/31").contains(client("127.0.0.1")))
        XCTAssertFalse(block("127.0.0.0/31").contains(client("127.0.0.2")))
    }

    /// A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`: IPv4 blocks match them.
    func testIPv4BlocksMatchIPv4MappedClients() {
        XCTAssertTrue(block("10.0.0.0/8").contains(client("::ffff:10.1.2.3")))
        XCTAssertFalse(block("10.0.0.0/8").contains(client("::ffff:11.1.2.3")))
        XCTAssertTrue(block("0.0.0.0/0").contains(client("::ffff:1.2.3.4")))
        XCTAssertFalse(block("10.0.0.0/8").contains(client("::10.1.2.3")), "IPv4-compatible is not mapped")
        XCTAssertFalse(block("10.0.0.0/8").contains(client("64:ff9b::10.1.2.3")), "NAT64 is not mapped")
    }

    func testIPv6BlocksMatchIPv6ClientsOnly() {
        let documentation = block("2001:db8::/32")
        XCTAssertTrue(documentation.contains(client("2001:db8::1")))
        XCTAssertTrue(documentation.contains(client("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")))
        XCTAssertFalse(documentation.contains(client("2001:db9::")))
        XCTAssertTrue(block("::1/128").contains(client("::1")))
        XCTAssertFalse(block("::1/128").contains(client("::2")))
        XCTAssertFalse(block("::1/128").contains(client("127.0.0.1")))
        XCTAssertTrue(block("::/0").contains(client("fe80::1")))
        XCTAssertFalse(block("::/0").contains(client("10.0.0.1")), "::/0 is every IPv6 client, not every client")
        XCTAssertFalse(block("::/0").contains(client("::ffff:10.0.0.1")))
        // Prefixes either side of the 64-bit halves.
        XCTAssertTrue(block("2001:db8::/64").contains(client("2001:db8::ffff:ffff:ffff:ffff")))
        XCTAssertFalse(block("2001:db8::/64").contains(client("2001:db8:0:1::")))
        XCTAssertTrue(block("2001:db8::/65").contains(client("2001:db8::7fff:ffff:ffff:ffff")))
        XCTAssertFalse(block("2001:db8::/65").contains(client("2001:db8::8000:0:0:0")))
        XCTAssertTrue(block("2001:db8::/63").contains(client("2001:db8:0:1::")))
        XCTAssertFalse(block("2001:db8::/63").contains(client("2001:db8:0:2::")))
        XCTAssertTrue(block("2001:db8::/127").contains(client("2001:db8::1")))
        XCTAssertFalse(block("2001:db8::/127").contains(client("2001:db8::2")))
    }

    func testListMatchesAnyOfItsBlocks() {
        let list = AddressBlockList([block("10.0.0.0/8"), block("::1/128"), block("192.0.2.7")])
        XCTAssertFalse(list.isEmpty)
        for host in ["10.9.8.7", "::1", "192.0.2.7", "::ffff:10.0.0.1"] {
            XCTAssertTrue(list.contains(client(host)), host)
        }
        for host in ["11.0.0.1", "::2", "192.0.2.8", "2001:db8::1"] {
            XCTAssertFalse(list.contains(client(host)), host)
        }
        let empty = AddressBlockList([])
        XCTAssertTrue(empty.isEmpty)
        XCTAssertFalse(empty.contains(client("10.0.0.1")))
        XCTAssertEqual(list.description, #"["10.0.0.0/8", "::1/128", "192.0.2.7/32"]"#)
    }

    /// Every /n of 0–32 and of 0–128 against the first and last address inside and the first outside.
    func testEveryPrefixLengthHasExactEdges() {
        for prefix in 0...32 {
            let size = UInt64(1) << (32 - prefix)
            let network = UInt32(0xC000_0000) & (prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix))
            let blk = block("\(dotted(network))/\(prefix)")
            XCTAssertTrue(blk.contains(client(dotted(network))), "/\(prefix)")
            XCTAssertTrue(blk.contains(client(dotted(UInt32(UInt64(network) + size - 1)))), "/\(prefix)")
            if UInt64(network) + size <= UInt64(UInt32.max) {
                XCTAssertFalse(blk.contains(client(dotted(UInt32(UInt64(network) + size)))), "/\(prefix)")
            }
        }
        for prefix in 0...128 {
            // :: with every bit past the prefix set is the block's last address; the bit before it is outside.
            let blk = block("::/\(prefix)")
            XCTAssertTrue(blk.contains(client("::")), "::/\(prefix)")
            let last = lastAddress(prefix: prefix)
            // ::/80's last address is ::ffff:255.255.255.255, an IPv4 client, which IPv6 blocks never hold.
            XCTAssertEqual(blk.contains(client(last)), prefix != 80, "::/\(prefix) and \(last)")
            if prefix > 0 {
                XCTAssertFalse(blk.contains(client(firstOutside(prefix: prefix))), "::/\(prefix)")
            }
        }
    }

    private func dotted(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    /// The IPv6 address with bits prefix..<128 set (and the rest clear).
    private func lastAddress(prefix: Int) -> String { ipv6 { $0 >= prefix } }

    /// The IPv6 address with only bit prefix-1 set: just past `::/prefix`.
    private func firstOutside(prefix: Int) -> String { ipv6 { $0 == prefix - 1 } }

    private func ipv6(_ bitIsSet: (Int) -> Bool) -> String {
        (0..<8).map { group in
            String((0..<16).reduce(0) { value, bit in value << 1 | (bitIsSet(group * 16 + bit) ? 1 : 0) }, radix: 16)
        }.joined(separator: ":")
    }
}
