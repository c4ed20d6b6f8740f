import Glibc
@testable import RingProxy
import XCTest

/// The tunnel state machine driven by scripted completion streams, with no kernel involved.
final class TunnelTests: XCTestCase {
    /// Feeds events and returns the actions of the last one.
    private func feed(_ tunnel: inout Tunnel, _ events: TunnelEvent...) -> [TunnelAction] {
        var last: [TunnelAction] = []
        for event in events {
            var actions = TunnelActions()
            tunnel.handle(event, into: &actions)
            last = actions.all
        }
        return last
    }

    /// A tunnel whose backend connect has just succeeded.
    private func established(retries: Int = 2) -> Tunnel {
        var tunnel = Tunnel(retries: retries)
        _ = feed(&tunnel, .start, .connectSubmitted, .connectCompleted(0), .connectTimeoutCompleted)
        return tunnel
    }

    func testStartAsksForConnectAndSuccessArmsBothReceives() {
        var tunnel = Tunnel(retries: 2)
        XCTAssertEqual(feed(&tunnel, .start), [.connect])
        XCTAssertEqual(feed(&tunnel, .connectSubmitted), [])
        XCTAssertEqual(tunnel.pendingOperations, 2)
        XCTAssertEqual(feed(&tunnel, .connectCompleted(0)), [
            .connected, .recv(.upstream, pollFirst: false), .recv(.downstream, pollFirst: true),
        ])
        XCTAssertEqual(tunnel.phase, .established)
    }

    func testFailedConnectRetriesThenClosesClientWhenRetriesRunOut() {
        var tunnel = Tunnel(retries: 1)
        _ = feed(&tunnel, .start, .connectSubmitted)
        XCTAssertEqual(feed(&tunnel, .connectCompleted(-ECONNREFUSED)), [.connectFailed(-ECONNREFUSED), .closeBackend, .connect])
        _ = feed(&tunnel, .connectTimeoutCompleted, .connectSubmitted)
        XCTAssertEqual(feed(&tunnel, .connectCompleted(-ECANCELED)), [.connectFailed(-ECANCELED), .closeBackend])
        XCTAssertEqual(tunnel.phase, .closing, "the linked timeout's completion is still due")
        XCTAssertEqual(feed(&tunnel, .connectTimeoutCompleted), [.close(abortive: false), .release])
    }

    func testNoBackendAvailableClosesAtOnce() {
        var tunnel = Tunnel(retries: 2)
        _ = feed(&tunnel, .start)
        XCTAssertEqual(feed(&tunnel, .connectUnavailable), [.close(abortive: false), .release])
    }

    func testReceivedBytesAreSentFromTheSameBufferAndReceiveIsRearmed() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: 100, buffer: 7, moreData: false)), [
            .send(.upstream, buffer: 7, offset: 0, length: 100), .recv(.upstream, pollFirst: true),
        ])
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 100)), [.recycle(buffer: 7)])
    }

    func testShortSendResumesAtFirstUnsentByte() {
        var tunnel = established()
        _ = feed(&tunnel, .received(.downstream, result: 1000, buffer: 3, moreData: true))
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 300)), [.send(.downstream, buffer: 3, offset: 300, length: 700)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 650)), [.send(.downstream, buffer: 3, offset: 950, length: 50)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 50)), [.recycle(buffer: 3)])
    }

    func testOnlyOneSendInFlightPerDirectionAndQueueKeepsOrder() {
        var tunnel = established()
        _ = feed(&tunnel, .received(.upstream, result: 10, buffer: 1, moreData: true))
        // A second buffer arrives while the first send is in flight: queued, not sent.
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: 20, buffer: 2, moreData: true)), [.recv(.upstream, pollFirst: false)])
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 10)), [.recycle(buffer: 1), .send(.upstream, buffer: 2, offset: 0, length: 20)])
    }

    func testFullQueueStopsReceivingUntilASendCompletes() {
        var tunnel = established()
        for buffer in 0..<UInt16(BufferQueue.capacity - 1) {
            _ = feed(&tunnel, .received(.upstream, result: 5, buffer: buffer, moreData: true))
        }
        let last = UInt16(BufferQueue.capacity - 1)
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: 5, buffer: last, moreData: true)), [],
                       "a full queue must not arm another receive: the slow reader stalls the writer")
        XCTAssertFalse(tunnel.upstream.recvPending)
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 5)), [
            .recycle(buffer: 0), .send(.upstream, buffer: 1, offset: 0, length: 5), .recv(.upstream, pollFirst: false),
        ])
    }

    func testEndOfStreamShutsDownOtherSideAfterQueuedBytesAreSent() {
        var tunnel = established()
        _ = feed(&tunnel, .received(.upstream, result: 10, buffer: 1, moreData: false))
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: 0, buffer: nil, moreData: false)), [],
                       "EOF must wait for the queued bytes")
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 10)), [.recycle(buffer: 1), .shutdownWrite(.upstream)])
        XCTAssertEqual(tunnel.upstream.state, .finished)
        XCTAssertEqual(tunnel.phase, .established, "the other direction keeps flowing")
        XCTAssertEqual(feed(&tunnel, .received(.downstream, result: 4, buffer: 9, moreData: false)), [
            .send(.downstream, buffer: 9, offset: 0, length: 4), .recv(.downstream, pollFirst: true),
        ])
    }

    func testBothEndsOfStreamCloseGracefully() {
        var tunnel = established()
        _ = feed(&tunnel, .received(.upstream, result: 0, buffer: nil, moreData: false))
        XCTAssertEqual(feed(&tunnel, .received(.downstream, result: 0, buffer: nil, moreData: false)), [.close(abortive: false), .release])
    }

    func testResetClosesBothAbortivelyAfterInFlightOperationsComplete() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: -ECONNRESET, buffer: nil, moreData: false)), [.cancel(.backend)])
        XCTAssertEqual(tunnel.phase, .closing)
        XCTAssertEqual(feed(&tunnel, .received(.downstream, result: -ECANCELED, buffer: nil, moreData: false)), [.close(abortive: true), .release])
    }

    func testBufferOfAnInFlightSendIsRecycledOnlyWhenTheSendCompletes() {
        var tunnel = established()
        _ = feed(&tunnel, .received(.upstream, result: 10, buffer: 1, moreData: true))
        _ = feed(&tunnel, .received(.upstream, result: 10, buffer: 2, moreData: true))
        // The backend resets: buffer 2 (queued) goes back now, buffer 1 (being sent) must not.
        XCTAssertEqual(feed(&tunnel, .received(.downstream, result: -ECONNRESET, buffer: nil, moreData: false)),
                       [.recycle(buffer: 2), .cancel(.client), .cancel(.backend)])
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: -ECANCELED)), [.recycle(buffer: 1)])
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: -ECANCELED, buffer: nil, moreData: false)), [.close(abortive: true), .release])
    }

    func testEmptyBufferRingWaitsInsteadOfFailing() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, .received(.upstream, result: -ENOBUFS, buffer: nil, moreData: false)), [.waitForBuffers(.upstream)])
        XCTAssertEqual(tunnel.phase, .established)
        XCTAssertEqual(feed(&tunnel, .buffersAvailable(.upstream)), [.recv(.upstream, pollFirst: false)])
        XCTAssertEqual(feed(&tunnel, .buffersAvailable(.downstream)), [], "that direction still has its receive armed")
    }

    func testIdleTimeoutCancelsAndClosesGracefully() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, .idleTimeout), [.cancel(.client), .cancel(.backend)])
        _ = feed(&tunnel, .received(.upstream, result: -ECANCELED, buffer: nil, moreData: false))
        XCTAssertEqual(feed(&tunnel, .received(.downstream, result: 7, buffer: 4, moreData: false)),
                       [.recycle(buffer: 4), .close(abortive: false), .release],
                       "a buffer that lands after the cancel still goes back")
    }

    /// Random completion streams: whatever happens, every buffer received goes back exactly once, a
    /// direction never holds more than its queue, sends never overlap, and release comes last, once.
    func testRandomCompletionStreamsKeepEveryInvariant() {
        var random = FastRandom(seed: 42)
        for _ in 0..<2000 {
            var model = TunnelModel(random: random.next())
            model.run(steps: 200)
            XCTAssertTrue(model.violations.isEmpty, model.violations.joined(separator: "\n"))
            if !model.violations.isEmpty { return }
        }
    }
}

/// Plays the kernel for one tunnel: completes its in-flight operations in random order with random
/// results and checks the tunnel's actions against the invariants.
private struct TunnelModel {
    var tunnel: Tunnel
    var random: FastRandom
    var headerLeft: Int
    var violations: [String] = []
    var inFlight: [TunnelEvent] = []
    var buffersOut = Set<UInt16>()
    var nextBuffer: UInt16 = 0
    var released = false
    var sendsInFlight = [Direction: Int]()

    init(random seed: UInt64) {
        random = FastRandom(seed: seed)
        headerLeft = random.below(2) == 0 ? 0 : 1 + random.below(100)
        tunnel = Tunnel(retries: 2, proxyHeaderLength: headerLeft)
    }

    mutating func run(steps: Int) {
        apply(.start)
        for _ in 0..<steps where !released {
            if !inFlight.isEmpty, random.below(10) > 0 {
                apply(inFlight.remove(at: random.below(inFlight.count)))
            } else {
                apply([TunnelEvent.idleTimeout, .buffersAvailable(.upstream), .buffersAvailable(.downstream)][random.below(3)])
            }
        }
        while !released, !inFlight.isEmpty { apply(inFlight.removeFirst()) }
        if !released && tunnel.phase != .closing && tunnel.phase != .closed { apply(.terminate) }
        while !released, !inFlight.isEmpty { apply(inFlight.removeFirst()) }
        if !released { violations.append("never released (phase \(tunnel.phase), pending \(tunnel.pendingOperations))") }
        if !buffersOut.isEmpty { violations.append("buffers never returned: \(buffersOut.sorted())") }
    }

    mutating func apply(_ event: TunnelEvent) {
        if case .received(_, let result, let buffer?, _) = event, result >= 0 || random.below(2) == 0 {
            _ = result
            buffersOut.insert(buffer)
        }
        if case .sent(let direction, _) = event { sendsInFlight[direction, default: 0] -= 1 }
        if case .headerSent(let result) = event {
            sendsInFlight[.upstream, default: 0] -= 1
            if result > 0 { headerLeft -= Int(result) }
        }
        var actions = TunnelActions()
        tunnel.handle(event, into: &actions)
        for action in actions.all {
            guard !released else { violations.append("action \(action) after release"); return }
            switch action {
            case .connect:
                if random.below(5) == 0 {
                    apply(.connectUnavailable)
                } else {
                    apply(.connectSubmitted)
                    inFlight.append(.connectCompleted(random.below(3) == 0 ? -ECONNREFUSED : 0))
                    inFlight.append(.connectTimeoutCompleted)
                }
            case .recv(let direction, _):
                let roll = random.below(10)
                if roll == 0 {
                    inFlight.append(.received(direction, result: 0, buffer: nil, moreData: false))
                } else if roll == 1 {
                    inFlight.append(.received(direction, result: -ENOBUFS, buffer: nil, moreData: false))
                } else if roll == 2 {
                    inFlight.append(.received(direction, result: -ECONNRESET, buffer: nil, moreData: false))
                } else {
                    nextBuffer &+= 1
                    inFlight.append(.received(direction, result: Int32(1 + random.below(16384)), buffer: nextBuffer, moreData: random.below(2) == 0))
                }
            case .send(let direction, let buffer, _, let length):
                if direction == .upstream && headerLeft > 0 { violations.append("payload sent upstream before the PROXY header") }
                sendsInFlight[direction, default: 0] += 1
                if sendsInFlight[direction]! > 1 { violations.append("two sends in flight on \(direction)") }
                if !buffersOut.contains(buffer) { violations.append("send of buffer \(buffer) not held") }
                let roll = random.below(10)
                let result: Int32 = roll == 0 ? -EPIPE : roll < 3 ? Int32(1 + random.below(Int(length))) : Int32(length)
                inFlight.append(.sent(direction, result: result))
            case .recycle(let buffer):
                if buffersOut.remove(buffer) == nil { violations.append("buffer \(buffer) recycled twice or never held") }
                if sendsInFlight.values.contains(where: { $0 > 0 }), isBeingSent(buffer) {
                    violations.append("buffer \(buffer) recycled while its send is in flight")
                }
            case .cancel(let side):
                inFlight = inFlight.map { pending in
                    switch pending {
                    case .received(let direction, _, _, _) where direction.source == side:
                        return .received(direction, result: -ECANCELED, buffer: nil, moreData: false)
                    case .sent(let direction, _) where direction.destination == side:
                        return .sent(direction, result: -ECANCELED)
                    case .headerSent where side == .backend:
                        return .headerSent(result: -ECANCELED)
                    case .connectCompleted where side == .backend:
                        return .connectCompleted(-ECANCELED)
                    default:
                        return pending
                    }
                }
            case .release:
                if tunnel.pendingOperations != 0 { violations.append("released with \(tunnel.pendingOperations) operations in flight") }
                if !inFlight.isEmpty { violations.append("released before completions \(inFlight)") }
                released = true
            case .sendHeader(let offset, let length):
                sendsInFlight[.upstream, default: 0] += 1
                if sendsInFlight[.upstream]! > 1 { violations.append("header sent beside another upstream send") }
                if Int(length) != headerLeft || Int(offset) != Int(tunnel.headerLength) - headerLeft {
                    violations.append("header send of \(length) at \(offset) with \(headerLeft) left")
                }
                let roll = random.below(10)
                let result: Int32 = roll == 0 ? -ECONNRESET : roll < 3 ? Int32(1 + random.below(Int(length))) : Int32(length)
                inFlight.append(.headerSent(result: result))
            case .connected, .connectFailed, .closeBackend, .shutdownWrite, .waitForBuffers, .close:
                break
            }
        }
        for direction in Direction.allCases where Int(tunnel.pipe(direction).queue.count) > BufferQueue.capacity {
            violations.append("queue over capacity on \(direction)")
        }
    }

    func isBeingSent(_ buffer: UInt16) -> Bool {
        Direction.allCases.contains { direction in
            let pipe = tunnel.pipe(direction)
            return pipe.sendPending && !pipe.queue.isEmpty && pipe.queue.head.buffer == buffer
        }
    }
}
