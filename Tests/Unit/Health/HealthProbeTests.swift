@testable import RingProxy
import XCTest

/// What a health check sends and how it judges the answer, byte by byte, with no socket.
final class HealthProbeTests: XCTestCase {
    private let redis = HealthProbe.sendExpect(send: Array("PING\r\n".utf8), expect: Array("+PONG".utf8), within: 16)
    private let patroni = HealthProbe.http(HTTPProbe(method: "GET", path: "/primary", host: nil, statuses: [200], within: 4096))

    func testSendExpectPassesOnceTheExpectedTextArrivesEvenAcrossReads() {
        XCTAssertEqual(redis.verdict(on: Array("+PO".utf8), closed: false), .needMore)
        XCTAssertEqual(redis.verdict(on: Array("+PONG\r\n".utf8), closed: false), .pass)
        XCTAssertEqual(redis.verdict(on: Array("xx+PONG".utf8), closed: false), .pass, "a substring anywhere in the first bytes")
    }

    func testSendExpectFailsWhenThePeerClosesOrTheWindowIsFullWithoutTheText() {
        XCTAssertEqual(redis.verdict(on: [], closed: true), .fail("closed without an answer"))
        XCTAssertEqual(redis.verdict(on: Array("-ERR".utf8), closed: true), .fail("closed after 4 bytes without a match"))
        XCTAssertEqual(redis.verdict(on: Array("-NOAUTH required.".utf8).prefix(16).map { $0 }, closed: true),
                       .fail("no match in the first 16 bytes"))
    }

    func testHTTPPassesOnAnExpectedStatusOnly() {
        XCTAssertEqual(patroni.verdict(on: Array("HTTP/1.1 200 OK\r\n".utf8), closed: false), .pass)
        XCTAssertEqual(patroni.verdict(on: Array("HTTP/1.0 503 Service Unavailable\r\n".utf8), closed: false), .fail("status 503"))
        XCTAssertEqual(patroni.verdict(on: Array("HTTP/1.1 20".utf8), closed: false), .needMore, "the status line is not complete")
        XCTAssertEqual(patroni.verdict(on: Array("HTTP/1.1 20".utf8), closed: true), .fail("closed after 11 bytes without a match"))
        XCTAssertEqual(patroni.verdict(on: Array("SSH-2.0-OpenSSH\r\n".utf8), closed: false), .fail("not an HTTP response"))
        let several = HealthProbe.http(HTTPProbe(statuses: [200, 204]))
        XCTAssertEqual(several.verdict(on: Array("HTTP/1.1 204 No Content\r\n".utf8), closed: false), .pass)
    }

    func testHTTPRequestNamesMethodPathAndHostAndAsksToClose() {
        XCTAssertEqual(String(decoding: patroni.request(host: "10.0.0.1:8008"), as: UTF8.self),
                       "GET /primary HTTP/1.1\r\nHost: 10.0.0.1:8008\r\nUser-Agent: ringproxy-health\r\nConnection: close\r\n\r\n")
        let named = HealthProbe.http(HTTPProbe(method: "HEAD", path: "/health", host: "db.internal"))
        XCTAssertTrue(String(decoding: named.request(host: "10.0.0.1:80"), as: UTF8.self).hasPrefix("HEAD /health HTTP/1.1\r\nHost: db.internal\r\n"))
        XCTAssertEqual(redis.request(host: "x"), Array("PING\r\n".utf8))
        XCTAssertEqual(HealthProbe.connect.request(host: "x"), [])
    }

    func testAPostgresSSLRequestAnswerIsOneByte() {
        // The SSLRequest a client opens with; a server answers 'S' or 'N'.
        let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]
        let postgres = HealthProbe.sendExpect(send: sslRequest, expect: Array("N".utf8), within: 1)
        XCTAssertEqual(postgres.verdict(on: Array("N".utf8), closed: true), .pass)
        XCTAssertEqual(postgres.verdict(on: Array("S".utf8), closed: true), .fail("no match in the first 1 bytes"))
    }
}
