@testable import RingProxy
import XCTest

/// A routing listener's preamble (our PROXY header, then the client bytes its routing stage held, up to
/// `preread_max` and a PROXY header in) goes before anything else, in as many sends as it takes.
final class TunnelPreambleTests: XCTestCase {
    let links = BufferLinks(buffers: 16)

    private func feed(_ tunnel: inout Tunnel, _ event: TunnelEvent) -> [TunnelAction] {
        var actions = TunnelActions()
        tunnel.handle(event, links: links, into: &actions)
        return actions.all
    }

    func testALongPreambleIsSentWholeBeforeAnyPayload() {
        let preamble = ListenerRouting.prereadMaxLimits.upperBound + ProxyHeaderReader.maximumLength + ProxyProtocolVersion.maximumHeaderLength
        XCTAssertLessThanOrEqual(preamble, Int(UInt16.max), "the longest preamble fits the tunnel's 16-bit count")
        var tunnel = Tunnel(retries: 0, proxyHeaderLength: preamble)
        _ = feed(&tunnel, .start)
        _ = feed(&tunnel, .connectSubmitted)
        XCTAssertEqual(feed(&tunnel, .connectCompleted(0)).prefix(2), [.connected, .sendHeader(offset: 0, length: UInt32(preamble))])
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: 100, buffer: 3, armed: true)), [], "payload waits")
        XCTAssertEqual(feed(&tunnel, .headerSent(result: 40000)), [.sendHeader(offset: 40000, length: UInt32(preamble - 40000))])
        XCTAssertEqual(feed(&tunnel, .headerSent(result: Int32(preamble - 40000))), [.send(.upstream, buffer: 3, offset: 0, length: 100)])
        XCTAssertEqual(tunnel.headerSent, tunnel.headerLength)
    }
}
