import Glibc
@testable import RingProxy
import XCTest

/// A send covers what a direction has queued, up to `Tunnel.chainSendLimit` buffers, as one message: its
/// completion gives back every buffer it sent in full, in order, and a short one resumes at the first unsent
/// byte, whichever buffer that is in. (The tunnel tests' scripted driver, in TunnelTests.swift.)
extension TunnelTests {
    func testBuffersQueuedBehindASendGoAsOneChainSend() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, data(.downstream, 100, buffer: 1)), [.send(.downstream, buffer: 1, offset: 0, length: 100)],
                       "one buffer queued: a plain send")
        XCTAssertEqual(feed(&tunnel, data(.downstream, 200, buffer: 2), data(.downstream, 300, buffer: 3)), [])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 100)),
                       [.recycle(buffer: 1), .sendChain(.downstream, first: 2, count: 2, offset: 0)])
        XCTAssertEqual(tunnel.downstream.sending, 2)
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 500)), [.recycleChain(first: 2, count: 2)])
        XCTAssertTrue(tunnel.downstream.queue.isEmpty)
        XCTAssertEqual(tunnel.downstream.send, .idle)
        XCTAssertEqual(tunnel.pendingOperations, 2, "only the two receives are left in flight")
    }

    func testShortChainSendResumesAcrossBufferBoundaries() {
        var tunnel = established()
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1), data(.upstream, 100, buffer: 2), data(.upstream, 200, buffer: 3),
                 data(.upstream, 300, buffer: 4))
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 10)),
                       [.recycle(buffer: 1), .sendChain(.upstream, first: 2, count: 3, offset: 0)])
        // 250 of 600 bytes: buffer 2 went in full, buffer 3 up to its byte 150.
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 250)),
                       [.recycle(buffer: 2), .sendChain(.upstream, first: 3, count: 2, offset: 150)])
        // 100 more: the last 50 of buffer 3 and the first 50 of buffer 4, which is then alone.
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 100)),
                       [.recycle(buffer: 3), .send(.upstream, buffer: 4, offset: 50, length: 250)])
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 250)), [.recycle(buffer: 4)])
    }

    func testAShortChainSendEndingOnABoundaryResumesAtTheNextBuffer() {
        var tunnel = established()
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1), data(.upstream, 100, buffer: 2), data(.upstream, 100, buffer: 3),
                 data(.upstream, 100, buffer: 4), .sent(.upstream, result: 10))
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 200)),
                       [.recycleChain(first: 2, count: 2), .send(.upstream, buffer: 4, offset: 0, length: 100)])
    }

    func testAChainSendCoversAtMostTheLimit() {
        var tunnel = established()
        // A multishot receive can land many buffers before its cancel takes effect.
        for buffer in UInt16(1)...20 { _ = feed(&tunnel, data(.downstream, 10, buffer: buffer)) }
        let limit = Tunnel.chainSendLimit
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 10)),
                       [.recycle(buffer: 1), .sendChain(.downstream, first: 2, count: limit, offset: 0)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: Int32(limit) * 10)),
                       [.recycleChain(first: 2, count: limit), .sendChain(.downstream, first: 2 + limit, count: limit, offset: 0)])
    }

    /// Buffer pressure while a chain is being sent: what it sent goes back, the rest (the part of a buffer it
    /// covered, and a buffer it did not) is spilled.
    func testEvictionDuringAChainSendSpillsWhatItDidNotSend() {
        var tunnel = established()
        _ = feed(&tunnel, data(.upstream, 100, buffer: 1), data(.upstream, 100, buffer: 2), data(.upstream, 100, buffer: 3))
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 100)),
                       [.recycle(buffer: 1), .sendChain(.upstream, first: 2, count: 2, offset: 0)])
        XCTAssertEqual(feed(&tunnel, data(.upstream, 100, buffer: 4)), [], "queued behind the chain in flight")
        XCTAssertEqual(feed(&tunnel, .evict(.upstream)), [.cancelReceive(.upstream), .cancelSend(.upstream)])
        XCTAssertEqual(tunnel.upstream.send, .evicting)
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 150)), [
            .recycle(buffer: 2), .spill(.upstream, first: 3, count: 2, skip: 50, bytes: 150),
            .sendSpill(.upstream, offset: 0, length: 150),
        ])
        XCTAssertTrue(tunnel.upstream.queue.isEmpty)
        XCTAssertEqual(tunnel.upstream.sending, 0, "a spill's send reads no buffer")
    }

    /// A reset while a chain is being sent: the buffers queued behind it go back at once, the ones it reads
    /// only when it completes.
    func testResetDuringAChainSendKeepsItsBuffersUntilItCompletes() {
        var tunnel = established()
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1), data(.upstream, 10, buffer: 2), data(.upstream, 10, buffer: 3),
                 .sent(.upstream, result: 10), data(.upstream, 10, buffer: 4))
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECONNRESET)), [.recycleChain(first: 4, count: 1), .cancel(.client), .cancel(.backend)])
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: -ECANCELED)), [.recycleChain(first: 2, count: 2)])
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECANCELED)), [.close(abortive: true), .release])
    }
}
