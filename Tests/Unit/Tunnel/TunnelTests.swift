import Glibc
@testable import RingProxy
import XCTest

/// The tunnel state machine driven by scripted completion streams, with no kernel involved.
final class TunnelTests: XCTestCase {
    let links = BufferLinks(buffers: 65536)

    /// Feeds events and returns the actions of the last one.
    func feed(_ tunnel: inout Tunnel, _ events: TunnelEvent...) -> [TunnelAction] {
        var last: [TunnelAction] = []
        for event in events {
            var actions = TunnelActions()
            tunnel.handle(event, links: links, into: &actions)
            last = actions.all
        }
        return last
    }

    /// A tunnel whose backend connect has just succeeded (both receives armed).
    func established(retries: Int = 2) -> Tunnel {
        var tunnel = Tunnel(retries: retries)
        _ = feed(&tunnel, .start, .connectSubmitted, .connectCompleted(0), .connectTimeoutCompleted)
        return tunnel
    }

    func data(_ direction: Direction, _ bytes: Int32, buffer: UInt16, armed: Bool = true) -> TunnelEvent {
        .received(direction, result: bytes, buffer: buffer, armed: armed)
    }

    func ended(_ direction: Direction, _ result: Int32) -> TunnelEvent {
        .received(direction, result: result, buffer: nil, armed: false)
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
        XCTAssertEqual(tunnel.closeReason, .connectFailed)
    }

    func testNoBackendAvailableClosesAtOnce() {
        var tunnel = Tunnel(retries: 2)
        _ = feed(&tunnel, .start)
        XCTAssertEqual(feed(&tunnel, .connectUnavailable), [.close(abortive: false), .release])
        XCTAssertEqual(tunnel.closeReason, .noBackend)
    }

    func testReceivedBytesAreSentFromTheSameBufferAndTheReceiveStaysArmed() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, data(.upstream, 100, buffer: 7)), [.send(.upstream, buffer: 7, offset: 0, length: 100)])
        XCTAssertEqual(tunnel.upstream.receive, .armed, "a multishot receive is not armed again")
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 100)), [.recycle(buffer: 7)])
    }

    func testShortSendResumesAtFirstUnsentByte() {
        var tunnel = established()
        _ = feed(&tunnel, data(.downstream, 1000, buffer: 3))
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 300)), [.send(.downstream, buffer: 3, offset: 300, length: 700)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 650)), [.send(.downstream, buffer: 3, offset: 950, length: 50)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 50)), [.recycle(buffer: 3)])
    }

    func testOnlyOneSendInFlightPerDirectionAndTheQueueKeepsOrder() {
        var tunnel = established()
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1))
        XCTAssertEqual(feed(&tunnel, data(.upstream, 20, buffer: 2)), [], "a second buffer waits for the send in flight")
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 10)), [.recycle(buffer: 1), .send(.upstream, buffer: 2, offset: 0, length: 20)])
    }

    func testALongQueueCancelsTheReceiveUntilItDrains() {
        var tunnel = established()
        for buffer in 0..<UInt16(Tunnel.pauseAt - 1) {
            _ = feed(&tunnel, data(.upstream, 5, buffer: buffer))
        }
        XCTAssertEqual(feed(&tunnel, data(.upstream, 5, buffer: Tunnel.pauseAt - 1)), [.cancelReceive(.upstream)],
                       "a slow reader stalls its writer: receiving stops")
        XCTAssertEqual(tunnel.upstream.receive, .cancelling)
        // What the kernel had already received before the cancel landed is still kept, in order.
        XCTAssertEqual(feed(&tunnel, data(.upstream, 5, buffer: 100)), [])
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECANCELED)), [])
        XCTAssertEqual(tunnel.upstream.receive, .idle)
        XCTAssertEqual(tunnel.upstream.queue.count, Tunnel.pauseAt + 1)
        var resumed = false
        var sent: [UInt16] = []
        while let head = tunnel.upstream.queue.isEmpty ? nil : tunnel.upstream.queue.head {
            sent.append(head)
            let actions = feed(&tunnel, .sent(.upstream, result: 5))
            if actions.contains(.recv(.upstream, pollFirst: false)) {
                resumed = true
                XCTAssertLessThanOrEqual(tunnel.upstream.queue.count, Tunnel.resumeAt)
            }
        }
        XCTAssertEqual(sent, [0, 1, 2, 3, 100])
        XCTAssertTrue(resumed, "receiving starts again once the queue is short")
    }

    func testEndOfStreamShutsDownOtherSideAfterQueuedBytesAreSent() {
        var tunnel = established()
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1))
        XCTAssertEqual(feed(&tunnel, ended(.upstream, 0)), [], "EOF must wait for the queued bytes")
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 10)), [.recycle(buffer: 1), .shutdownWrite(.upstream)])
        XCTAssertEqual(tunnel.upstream.state, .finished)
        XCTAssertEqual(tunnel.phase, .established, "the other direction keeps flowing")
        XCTAssertEqual(feed(&tunnel, data(.downstream, 4, buffer: 9)), [.send(.downstream, buffer: 9, offset: 0, length: 4)])
    }

    func testDataAfterTheOtherSidesFinKeepsFlowing() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, ended(.downstream, 0)), [.shutdownWrite(.downstream)], "the backend's FIN is passed on")
        for buffer in UInt16(1)...3 {
            XCTAssertEqual(feed(&tunnel, data(.upstream, 100, buffer: buffer)), [.send(.upstream, buffer: buffer, offset: 0, length: 100)])
            XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: 100)), [.recycle(buffer: buffer)])
        }
        XCTAssertEqual(feed(&tunnel, ended(.upstream, 0)), [.close(abortive: false), .release])
        XCTAssertEqual(tunnel.closeReason, .completed)
    }

    func testFinWhileASendIsQueuedWaitsForEveryByte() {
        var tunnel = established()
        _ = feed(&tunnel, data(.downstream, 10, buffer: 1), data(.downstream, 20, buffer: 2), ended(.downstream, 0))
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 10)), [.recycle(buffer: 1), .send(.downstream, buffer: 2, offset: 0, length: 20)])
        XCTAssertEqual(feed(&tunnel, .sent(.downstream, result: 20)), [.recycle(buffer: 2), .shutdownWrite(.downstream)])
    }

    func testBothEndsOfStreamCloseGracefully() {
        var tunnel = established()
        _ = feed(&tunnel, ended(.upstream, 0))
        XCTAssertEqual(feed(&tunnel, ended(.downstream, 0)), [.close(abortive: false), .release])
    }

    func testResetFromTheClientClosesBothAbortively() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECONNRESET)), [.cancel(.backend)])
        XCTAssertEqual(tunnel.phase, .closing)
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECANCELED)), [.close(abortive: true), .release])
        XCTAssertEqual(tunnel.closeReason, .clientError)
    }

    func testResetFromTheBackendClosesBothAbortively() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECONNRESET)), [.cancel(.client)])
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECANCELED)), [.close(abortive: true), .release])
        XCTAssertEqual(tunnel.closeReason, .backendError)
    }

    func testBufferOfAnInFlightSendIsRecycledOnlyWhenTheSendCompletes() {
        var tunnel = established()
        _ = feed(&tunnel, data(.upstream, 10, buffer: 1), data(.upstream, 10, buffer: 2))
        // The backend resets: buffer 2 (queued) goes back now, buffer 1 (being sent) must not.
        XCTAssertEqual(feed(&tunnel, ended(.downstream, -ECONNRESET)), [.recycleChain(first: 2, count: 1), .cancel(.client), .cancel(.backend)])
        XCTAssertEqual(feed(&tunnel, .sent(.upstream, result: -ECANCELED)), [.recycle(buffer: 1)])
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ECANCELED)), [.close(abortive: true), .release])
    }

    func testClosingALongQueueGivesItsBuffersBackInOneAction() {
        var tunnel = established()
        // A multishot receive can land many buffers between two loop turns, beyond the pause mark.
        for buffer in UInt16(1)...40 { _ = feed(&tunnel, data(.upstream, 100, buffer: buffer)) }
        XCTAssertEqual(tunnel.upstream.queue.count, 40)
        let actions = feed(&tunnel, .idleTimeout)
        XCTAssertEqual(actions, [.recycleChain(first: 2, count: 39), .cancel(.client), .cancel(.backend)],
                       "buffer 1 is being sent: it stays until its send completes")
        var chained: [UInt16] = []
        var buffer: UInt16 = 2
        for _ in 0..<39 {
            chained.append(buffer)
            buffer = links.next[Int(buffer)]
        }
        XCTAssertEqual(chained, Array(2...40))
    }

    func testEmptyBufferRingWaitsInsteadOfFailing() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, ended(.upstream, -ENOBUFS)), [.waitForBuffers(.upstream)])
        XCTAssertEqual(tunnel.phase, .established)
        XCTAssertEqual(tunnel.upstream.receive, .starved)
        XCTAssertEqual(feed(&tunnel, .evict(.upstream)), [], "nothing queued: nothing to give up, and no receive to cancel")
        XCTAssertEqual(feed(&tunnel, .buffersAvailable(.upstream)), [.recv(.upstream, pollFirst: false)])
        XCTAssertEqual(tunnel.upstream.receive, .armed)
        XCTAssertEqual(feed(&tunnel, .buffersAvailable(.downstream)), [], "that direction still has its receive armed")
    }

    func testIdleTimeoutCancelsAndClosesGracefully() {
        var tunnel = established()
        XCTAssertEqual(feed(&tunnel, .idleTimeout), [.cancel(.client), .cancel(.backend)])
        _ = feed(&tunnel, ended(.upstream, -ECANCELED))
        XCTAssertEqual(feed(&tunnel, .received(.downstream, result: 7, buffer: 4, armed: false)),
                       [.recycle(buffer: 4), .close(abortive: false), .release],
                       "a buffer that lands after the cancel still goes back")
        XCTAssertEqual(tunnel.closeReason, .idleTimeout)
    }

    func testProxyHeaderGoesBeforeAnyPayload() {
        var tunnel = Tunnel(retries: 0, proxyHeaderLength: 50)
        _ = feed(&tunnel, .start, .connectSubmitted)
        XCTAssertEqual(feed(&tunnel, .connectCompleted(0)), [
            .connected, .sendHeader(offset: 0, length: 50), .recv(.upstream, pollFirst: false), .recv(.downstream, pollFirst: true),
        ])
        XCTAssertEqual(tunnel.upstream.send, .header)
        XCTAssertEqual(feed(&tunnel, data(.upstream, 10, buffer: 1)), [], "payload waits for the header")
        XCTAssertEqual(feed(&tunnel, .headerSent(result: 20)), [.sendHeader(offset: 20, length: 30)])
        XCTAssertEqual(feed(&tunnel, .headerSent(result: 30)), [.send(.upstream, buffer: 1, offset: 0, length: 10)])
    }

    /// Random completion streams: whatever happens, every buffer received goes back exactly once, sends
    /// never overlap, the PROXY header goes first, and release comes last, once, with nothing in flight.
    func testRandomCompletionStreamsKeepEveryInvariant() {
        var random = FastRandom(seed: 42)
        var delivered = 0, pauses = 0, chainSends = 0, shortChainSends = 0, chainEvictions = 0
        for _ in 0..<3000 {
            var model = TunnelModel(random: random.next())
            model.run(steps: 300, links)
            XCTAssertTrue(model.violations.isEmpty, model.violations.joined(separator: "\n"))
            if !model.violations.isEmpty { return }
            delivered += Int(model.nextBuffer)
            pauses += model.pauses
            chainSends += model.chainSends
            shortChainSends += model.shortChainSends
            chainEvictions += model.chainEvictions
        }
        // The streams must have exercised the machine, not ended at once.
        XCTAssertGreaterThan(delivered, 50_000)
        XCTAssertGreaterThan(pauses, 500, "backpressure must have paused receives")
        XCTAssertGreaterThan(chainSends, 8000, "sends must have covered several queued buffers")
        XCTAssertGreaterThan(shortChainSends, 1500, "chain sends must have completed short, across buffer boundaries")
        XCTAssertGreaterThan(chainEvictions, 600, "evictions must have caught chain sends in flight")
    }
}

/// Plays the kernel for one tunnel: completes its operations in random order with random results, keeps
/// multishot receives armed and delivering until they end or are cancelled, and checks the tunnel's actions
/// against the invariants.
private struct TunnelModel {
    var tunnel: Tunnel
    var random: FastRandom
    var headerLeft: Int
    var violations: [String] = []
    /// One-shot operations in flight, as the completion each will post.
    var inFlight: [TunnelEvent] = []
    /// Multishot receives armed in the "kernel", and whether a cancel was asked for.
    var receiving: [Direction: Bool] = [.upstream: false, .downstream: false]
    var cancelAsked: [Direction: Bool] = [.upstream: false, .downstream: false]
    var buffersOut = Set<UInt16>()
    var nextBuffer: UInt16 = 0
    var released = false
    var sendsInFlight = [Direction: Int]()
    /// Bytes of each direction's spill, while it has one.
    var spills = [Direction: UInt32]()
    /// Directions whose armed receive is single-shot.
    var oneShot = Set<Direction>()
    /// The buffers each direction's send in flight reads from, as the model saw the send submitted and not yet
    /// completed: kept here, not asked of the tunnel, so a tunnel that forgets its own send is caught.
    var buffersBeingSent = [Direction: [UInt16]]()
    var pauses = 0
    /// Sends of several buffers, those of them completed short of a buffer's end past the first buffer, and
    /// those cancelled for eviction.
    var chainSends = 0, shortChainSends = 0, chainEvictions = 0

    init(random seed: UInt64) {
        random = FastRandom(seed: seed)
        headerLeft = random.below(2) == 0 ? 0 : 1 + random.below(100)
        tunnel = Tunnel(retries: 2, proxyHeaderLength: headerLeft)
    }

    mutating func run(steps: Int, _ links: borrowing BufferLinks) {
        apply(.start, links)
        for _ in 0..<steps where !released {
            let armed = Direction.allCases.filter { receiving[$0]! }
            let roll = random.below(10)
            if roll < 5, !inFlight.isEmpty {
                apply(inFlight.remove(at: random.below(inFlight.count)), links)
            } else if roll < 9, let direction = armed.randomElement(using: &random) {
                apply(receiveCompletion(direction), links)
            } else if random.below(40) == 0 {
                apply(.idleTimeout, links)
            } else if random.below(3) == 0 {
                apply(.evict(random.below(2) == 0 ? .upstream : .downstream), links)
            } else {
                apply(.buffersAvailable(random.below(2) == 0 ? .upstream : .downstream), links)
            }
        }
        if !released && tunnel.phase != .closing && tunnel.phase != .closed { apply(.terminate, links) }
        settle(links)
        if !released { violations.append("never released (phase \(tunnel.phase), pending \(tunnel.pendingOperations))") }
        if !buffersOut.isEmpty { violations.append("buffers never returned: \(buffersOut.sorted())") }
        if !spills.isEmpty { violations.append("spills never freed: \(spills)") }
    }

    /// Completes everything still in flight, as the kernel would after cancels.
    mutating func settle(_ links: borrowing BufferLinks) {
        for _ in 0..<1000 where !released {
            if let direction = Direction.allCases.first(where: { receiving[$0]! }) {
                apply(cancelAsked[direction]! ? finalReceive(direction, -ECANCELED) : receiveCompletion(direction), links)
            } else if !inFlight.isEmpty {
                apply(inFlight.removeFirst(), links)
            } else {
                break
            }
        }
    }

    /// What an armed multishot receive posts next: more data, or its last completion.
    mutating func receiveCompletion(_ direction: Direction) -> TunnelEvent {
        if cancelAsked[direction]! && random.below(3) > 0 { return finalReceive(direction, -ECANCELED) }
        switch random.below(120) {
        case 0..<3: return finalReceive(direction, 0)
        case 3..<8: return finalReceive(direction, -ENOBUFS)
        case 8: return finalReceive(direction, -ECONNRESET)
        default:
            nextBuffer &+= 1
            buffersOut.insert(nextBuffer)
            let armed = !oneShot.contains(direction) && random.below(20) > 0
            if !armed { receiving[direction] = false }
            return .received(direction, result: Int32(1 + random.below(16384)), buffer: nextBuffer, armed: armed)
        }
    }

    mutating func finalReceive(_ direction: Direction, _ result: Int32) -> TunnelEvent {
        receiving[direction] = false
        return .received(direction, result: result, buffer: nil, armed: false)
    }

    mutating func apply(_ event: TunnelEvent, _ links: borrowing BufferLinks) {
        if case .sent(let direction, _) = event {
            sendsInFlight[direction, default: 0] -= 1
            // The kernel is done with the buffers once the send completes (a short send resubmits them below).
            buffersBeingSent[direction] = nil
        }
        if case .headerSent(let result) = event {
            sendsInFlight[.upstream, default: 0] -= 1
            if result > 0 { headerLeft -= Int(result) }
        }
        var actions = TunnelActions()
        tunnel.handle(event, links: links, into: &actions)
        for action in actions.all {
            guard !released else { violations.append("action \(action) after release"); return }
            switch action {
            case .connect:
                if random.below(10) == 0 {
                    apply(.connectUnavailable, links)
                } else {
                    apply(.connectSubmitted, links)
                    inFlight.append(.connectCompleted(random.below(5) == 0 ? -ECONNREFUSED : 0))
                    inFlight.append(.connectTimeoutCompleted)
                }
            case .recv(let direction, _), .recvOnce(let direction):
                if receiving[direction]! { violations.append("a second receive armed on \(direction)") }
                receiving[direction] = true
                cancelAsked[direction] = false
                if case .recvOnce = action { oneShot.insert(direction) } else { oneShot.remove(direction) }
            case .cancelReceive(let direction):
                cancelAsked[direction] = true
                pauses += 1
            case .send(let direction, let buffer, _, let length):
                if direction == .upstream && headerLeft > 0 { violations.append("payload sent upstream before the PROXY header") }
                sendsInFlight[direction, default: 0] += 1
                if sendsInFlight[direction]! > 1 { violations.append("two sends in flight on \(direction)") }
                if !buffersOut.contains(buffer) { violations.append("send of buffer \(buffer) not held") }
                buffersBeingSent[direction] = [buffer]
                let roll = random.below(10)
                let result: Int32 = random.below(100) == 0 ? -EPIPE : roll < 3 ? Int32(1 + random.below(Int(length))) : Int32(length)
                inFlight.append(.sent(direction, result: result))
            case .sendHeader(let offset, let length):
                sendsInFlight[.upstream, default: 0] += 1
                if sendsInFlight[.upstream]! > 1 { violations.append("header sent beside another upstream send") }
                if Int(length) != headerLeft || Int(offset) != Int(tunnel.headerLength) - headerLeft {
                    violations.append("header send of \(length) at \(offset) with \(headerLeft) left")
                }
                let roll = random.below(10)
                let result: Int32 = roll == 0 ? -ECONNRESET : roll < 3 ? Int32(1 + random.below(Int(length))) : Int32(length)
                inFlight.append(.headerSent(result: result))
            case .sendChain(let direction, let first, let count, let offset):
                if direction == .upstream && headerLeft > 0 { violations.append("payload sent upstream before the PROXY header") }
                sendsInFlight[direction, default: 0] += 1
                if sendsInFlight[direction]! > 1 { violations.append("two sends in flight on \(direction)") }
                if count < 2 || count > Tunnel.chainSendLimit { violations.append("a chain send of \(count) buffers") }
                var chain: [UInt16] = []
                var buffer = first
                var total = -Int(offset)
                for _ in 0..<count {
                    if !buffersOut.contains(buffer) { violations.append("send of buffer \(buffer) not held") }
                    chain.append(buffer)
                    total += Int(links.length[Int(buffer)])
                    buffer = links.next[Int(buffer)]
                }
                if Set(chain).count != chain.count { violations.append("a chain send reads a buffer twice: \(chain)") }
                if total <= 0 { violations.append("a chain send of \(total) bytes") }
                buffersBeingSent[direction] = chain
                chainSends += 1
                let roll = random.below(10)
                let result: Int32 = random.below(100) == 0 ? -EPIPE : roll < 3 ? Int32(1 + random.below(max(1, total))) : Int32(total)
                if result > 0 && Int(result) < total && Int(result) + Int(offset) > Int(links.length[Int(first)]) { shortChainSends += 1 }
                inFlight.append(.sent(direction, result: result))
            case .cancelSend(let direction):
                if buffersBeingSent[direction].map({ $0.count > 1 }) ?? false { chainEvictions += 1 }
                // The send completes cancelled, having sent part of its bytes, or in full all the same.
                inFlight = inFlight.map { pending in
                    guard case .sent(direction, let result) = pending, result > 0 else { return pending }
                    return .sent(direction, result: random.below(3) == 0 ? -ECANCELED : Int32(1 + random.below(Int(result))))
                }
            case .spill(let direction, let first, let count, _, let bytes):
                if spills[direction] != nil { violations.append("a second spill on \(direction)") }
                if bytes == 0 { violations.append("an empty spill") }
                spills[direction] = bytes
                var buffer = first
                for _ in 0..<count {
                    let next = links.next[Int(buffer)]
                    recycle(buffer)
                    buffer = next
                }
            case .sendSpill(let direction, let offset, let length):
                sendsInFlight[direction, default: 0] += 1
                if sendsInFlight[direction]! > 1 { violations.append("two sends in flight on \(direction)") }
                if spills[direction].map({ offset + length != $0 }) ?? true { violations.append("spill send past its spill") }
                let roll = random.below(10)
                let result: Int32 = random.below(100) == 0 ? -EPIPE : roll < 3 ? Int32(1 + random.below(Int(length))) : Int32(length)
                inFlight.append(.sent(direction, result: result))
            case .freeSpill(let direction):
                if spills.removeValue(forKey: direction) == nil { violations.append("free of a spill not held on \(direction)") }
                if sendsInFlight[direction, default: 0] > 0 { violations.append("spill freed while a send is in flight on \(direction)") }
            case .recycle(let buffer):
                recycle(buffer)
            case .recycleChain(let first, let count):
                var buffer = first
                for _ in 0..<count {
                    let next = links.next[Int(buffer)]
                    recycle(buffer)
                    buffer = next
                }
            case .cancel(let side):
                for direction in Direction.allCases where direction.source == side && receiving[direction]! {
                    cancelAsked[direction] = true
                }
                inFlight = inFlight.map { pending in
                    switch pending {
                    case .sent(let direction, _) where direction.destination == side: .sent(direction, result: -ECANCELED)
                    case .headerSent where side == .backend: .headerSent(result: -ECANCELED)
                    case .connectCompleted where side == .backend: .connectCompleted(-ECANCELED)
                    default: pending
                    }
                }
            case .release:
                if tunnel.pendingOperations != 0 { violations.append("released with \(tunnel.pendingOperations) operations in flight") }
                if !inFlight.isEmpty || receiving.values.contains(true) { violations.append("released before every completion") }
                released = true
            case .connected, .connectFailed, .closeBackend, .shutdownWrite, .waitForBuffers, .close:
                break
            }
        }
    }

    mutating func recycle(_ buffer: UInt16) {
        if buffersOut.remove(buffer) == nil { violations.append("buffer \(buffer) recycled twice or never held") }
        if isBeingSent(buffer) { violations.append("buffer \(buffer) recycled while its send is in flight") }
    }

    func isBeingSent(_ buffer: UInt16) -> Bool {
        buffersBeingSent.values.contains { $0.contains(buffer) }
    }
}
