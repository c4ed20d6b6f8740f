import Glibc
@testable import RingProxy
import XCTest

/// Errors are per direction: when one side fails, what it sent still reaches the other side, and only then
/// is the failure passed on (as a reset); what was going to the failed side is dropped. (The tunnel tests'
/// scripted driver, in TunnelTests.swift.)
extension TunnelTests {
    /// The HTTP 413 case: the backend answered and reset while the client was still uploading.
    func testFailedSendToTheBackendStillDeliversTheBackendsResponse() {
        var tunnel = established(retries: 0)
        _ = feed(&tunnel, data(.downstream, 10, buffer: 1), data(.upstream, 30, buffer: 2), data(.upstream, 30, buffer: 3))
        // The upload fails: what was left for the backend goes back, the client's receive stops.
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: -EPIPE)), [.recycleChain(first: 2, count: 2), .cancelReceive(.upstream)])
        XCTAssertEqual(tunnel.phase, .established)
        XCTAssertEqual(tunnel.closeReason, .backendError)
        // The response keeps flowing, including what was still in the backend socket.
        XCTAssertEqual(feed(&tunnel, data(.downstream, 20, buffer: 4)), [])
        XCTAssertEqual(feed(&tunnel, data(.upstream, 5, buffer: 5)), [.recycle(buffer: 5)], "bytes for the failed backend are dropped")
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECANCELED)), [])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 10)), [.recycle(buffer: 1), .send(.downstream, buffer: 4, offset: 0, length: 20)])
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECONNRESET)), [], "the last 20 bytes are still being sent")
        XCTAssertEqual(tunnel.phase, .established)
        // Delivered: now the reset is passed on.
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 20)), [.recycle(buffer: 4), .close(abortive: true), .release])
        XCTAssertEqual(tunnel.closeError, EPIPE)
    }

    func testBackendResetWithAResponseQueuedDeliversItFirst() {
        var tunnel = established(retries: 0)
        _ = feed(&tunnel, data(.downstream, 10, buffer: 1), data(.downstream, 10, buffer: 2))
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECONNRESET)), [.cancelReceive(.upstream)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 10)), [.recycle(buffer: 1), .send(.downstream, buffer: 2, offset: 0, length: 10)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 10)), [.recycle(buffer: 2), .cancel(.client)])
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECANCELED)), [.close(abortive: true), .release])
        XCTAssertEqual(tunnel.closeReason, .backendError)
    }

    func testClientResetStillDeliversItsLastBytesToTheBackend() {
        var tunnel = established(retries: 0)
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1), data(.downstream, 10, buffer: 2), data(.downstream, 10, buffer: 3))
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: -ECONNRESET)), [.recycleChain(first: 2, count: 2), .cancelReceive(.downstream)])
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECONNRESET)), [])
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECANCELED)), [])
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 10)), [.recycle(buffer: 1), .close(abortive: true), .release])
        XCTAssertEqual(tunnel.closeReason, .clientError)
    }

    /// A send in flight towards the side that failed keeps its buffer until it completes, then ends quietly.
    func testSendInFlightTowardsTheFailedSideGivesItsBufferBackOnCompletion() {
        var tunnel = established(retries: 0)
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1), data(.downstream, 10, buffer: 2), data(.downstream, 10, buffer: 3))
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECONNRESET)), [.recycleChain(first: 3, count: 1), .cancelReceive(.downstream)],
                       "buffer 2 is being sent to the client: it stays")
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: -ECONNRESET)), [.recycle(buffer: 2)])
        XCTAssertEqual(tunnel.phase, .established, "the client's last bytes are still being sent")
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 10)), [.recycle(buffer: 1), .cancel(.backend)])
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECANCELED)), [.close(abortive: true), .release])
        XCTAssertEqual(tunnel.closeError, ECONNRESET)
    }

    /// An idle timeout (or a stop) while a failed side's bytes are still being delivered: the close drops
    /// what is left, so it must pass the failure on as a reset, never end the stream cleanly.
    func testTimeoutWhileDeliveringAFailedSidesBytesStillResets() {
        var tunnel = established(retries: 0)
        _ = feed(&tunnel, data(.downstream, 10, buffer: 1), data(.downstream, 10, buffer: 2))
        _ = feed(&tunnel, ended(.downstream, -ECONNRESET))
        XCTAssertEqual(feed(&tunnel, .idleTimeout), [.recycleChain(first: 2, count: 1), .cancel(.client)])
        _ = feed(&tunnel, ended(.upstream, -ECANCELED))
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: -ECANCELED)), [.recycle(buffer: 1), .close(abortive: true), .release])
        XCTAssertEqual(tunnel.closeReason, .backendError)
    }

    /// With the other direction already finished, a failure closes at once, as before.
    func testFailureAfterTheOtherDirectionFinishedClosesAtOnce() {
        var tunnel = established(retries: 0)
        _ = feed(&tunnel, ended(.downstream, 0))
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECONNRESET)), [.close(abortive: true), .release])
    }
}
