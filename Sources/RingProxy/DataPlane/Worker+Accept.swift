import CURing
import Glibc
import Logging

/// A worker's listening socket for one listener, and the accepts it has in flight.
struct ListenerState {
    let id: UInt32
    let fd: Int32
    /// A multishot accept is armed.
    var multishot = false
    /// Its cancel was submitted (the worker is close to `--max-connections`, or stopping).
    var multishotCancelled = false
    /// Single-shot accepts in flight (used near the connection limit, where they can be counted exactly).
    var singles = 0

    init(id: UInt32, fd: Int32) {
        self.id = id
        self.fd = fd
    }

    var pendingAccepts: Int { (multishot ? 1 : 0) + singles }
}

/// Accepting: a multishot accept per listener while there is plenty of room; near `--max-connections`,
/// exactly as many single-shot accepts as there are free slots, so at the limit nothing is accepted and
/// dropped and new clients wait in the kernel's backlog.
///
/// A multishot accept cannot be paused exactly: between two loop turns it may post a completion for every
/// connection in the backlog. So it stays armed only while more than a full backlog (`acceptBurst`) of slots
/// is free per listener, and is cancelled below that.
extension Worker {
    /// Single-shot accepts kept in flight per listener near the limit.
    static let singleAcceptDepth = 8

    mutating func armAccepts() {
        guard phase == .running, !acceptPaused else { return }
        let free = table.capacity - table.active
        if free > acceptBurst * listeners.count {
            for index in listeners.indices where !listeners[index].multishot {
                ring.acceptMultishot(listener: listeners[index].fd, userData: acceptUserData(listeners[index], multishot: true))
                listeners[index].multishot = true
                listeners[index].multishotCancelled = false
            }
            return
        }
        var room = free
        for listener in listeners { room -= listener.singles + (listener.multishot ? acceptBurst : 0) }
        for index in listeners.indices {
            if listeners[index].multishot && !listeners[index].multishotCancelled {
                ring.cancel(acceptUserData(listeners[index], multishot: true), userData: UserData(.cancel, slot: 0))
                listeners[index].multishotCancelled = true
            }
            while room > 0 && listeners[index].singles < Self.singleAcceptDepth {
                ring.accept(listener: listeners[index].fd, userData: acceptUserData(listeners[index], multishot: false))
                listeners[index].singles += 1
                room -= 1
            }
        }
    }

    private func acceptUserData(_ listener: ListenerState, multishot: Bool) -> UserData {
        .accept(listener: listener.id, multishot: multishot)
    }

    mutating func acceptCompleted(_ completion: Completion) {
        let id = completion.userData.listener
        let multishot = completion.userData.isMultishot
        let stillArmed = multishot && completion.hasMore
        var listenerIndex: Int?
        if let index = listeners.firstIndex(where: { $0.id == id }) {
            Self.settle(&listeners[index], multishot: multishot, stillArmed: stillArmed)
            listenerIndex = index
        }
        let result = completion.result
        guard result >= 0 else { return acceptFailed(errno: -result, listener: listenerIndex, stillArmed: stillArmed) }
        guard phase != .terminating, let planIndex = plan.listeners.firstIndex(where: { $0.id == id }) else {
            // Accepted just before its listener was removed by a reload, or the proxy is closing everything.
            Glibc.close(result)
            return
        }
        admit(client: result, listenerIndex: planIndex)
    }

    private static func settle(_ listener: inout ListenerState, multishot: Bool, stillArmed: Bool) {
        if multishot {
            if !stillArmed {
                listener.multishot = false
                listener.multishotCancelled = false
            }
        } else {
            listener.singles -= 1
        }
    }

    /// Gives a client accepted on `plan.listeners[listenerIndex]` a slot and starts its tunnel.
    mutating func admit(client fd: Int32, listenerIndex: Int) {
        let listener = plan.listeners[listenerIndex]
        if let routing = listener.routing { return admitRouted(client: fd, listenerIndex: listenerIndex, routing: routing) }
        let retries = plan.config.retries
        // Only these pools need the client's address: one getpeername per connection, none otherwise.
        let needsAddress = listener.pool.algorithm == .sourceHash || listener.sendProxy != nil
        var peer: SocketAddress?
        var local: SocketAddress?
        if needsAddress {
            peer = Socket.peerAddress(of: fd)
            local = listener.sendProxy == nil ? nil : Socket.localAddress(of: fd)
            // A client that reset before the accept has no address left. Forwarded without its PROXY header,
            // its own bytes (a forged header) would be taken for ours; hashed as key 0 it would skew a pool.
            guard peer != nil, listener.sendProxy == nil || local != nil else {
                Socket.setAbortiveClose(fd)
                Glibc.close(fd)
                counters.add(1, .clientAddressUnknown)
                return
            }
        }
        guard let slot = table.open(client: fd, listener: UInt16(listenerIndex), tunnel: Tunnel(retries: retries), now: wheel.now) else {
            // Cannot happen while accepts are bounded by free slots; counted and logged if it ever does.
            Glibc.close(fd)
            counters.add(1, .acceptOverflows)
            logs.acceptOverflow.log(logger, .error, now: wheel.now, "accepted a client with no free connection slot; closed it",
                                    metadata: ["max_connections_per_worker": "\(table.capacity)"])
            return
        }
        if plan.config.accessLog {
            // Asked now: a client that resets later has no address left by the time its line is written.
            table.keepClientAddress(peer ?? Socket.peerAddress(of: fd), for: slot)
        }
        if let peer {
            table[slot].clientKey = stableHash(peer.addressBytes)
            if let version = listener.sendProxy, let local {
                let header = version.header(source: peer, destination: local)
                table.keepHeader(header, for: slot)
                table[slot].tunnel = Tunnel(retries: retries, proxyHeaderLength: header.count)
            }
        }
        table.setOpenedAt(monotonicMilliseconds(), for: slot)
        wheel.schedule(slot, in: table)
        counters.add(1, .accepted)
        handle(slot, .start)
    }

    private mutating func acceptFailed(errno error: Int32, listener: Int?, stillArmed: Bool) {
        switch error {
        case ECANCELED:
            return
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            // Out of descriptors or memory: stop accepting until the next tick; the backlog holds clients.
            counters.add(1, .acceptErrors)
            acceptPaused = true
            if let listener, stillArmed, !listeners[listener].multishotCancelled {
                ring.cancel(acceptUserData(listeners[listener], multishot: true), userData: UserData(.cancel, slot: 0))
                listeners[listener].multishotCancelled = true
            }
            logs.acceptFailure.log(logger, .warning, now: wheel.now, "accept failed; pausing accepts for \(Self.tickInterval)",
                                   metadata: ["error": "\(Self.describe(errno: error))",
                                              "hint": "raise the open-files limit (ulimit -n, LimitNOFILE=) or lower --max-connections"])
        default:
            // The client went away before we accepted it (ECONNABORTED) and the like: nothing to do.
            counters.add(1, .acceptErrors)
            logger.debug("accept failed", metadata: ["error": "\(Self.describe(errno: error))"])
        }
    }

    /// Stops accepting on `listener` and closes its socket. With `takeBacklog` (a drain), the clients already
    /// waiting in its backlog are served rather than reset by the close: accepted now while slots are free; with
    /// the table full, the socket stays open, accepting nothing new of its own, and the rest are taken as
    /// connections close (`serveBacklogs`).
    ///
    /// What a drain takes is bounded by a full backlog (`acceptBurst`): under a steady flood the backlog refills
    /// as fast as it is taken, and the drain must still end. With `net.ipv4.tcp_migrate_req=1` the kernel hands
    /// what is left to another listener of the `SO_REUSEPORT` group when the socket closes.
    mutating func retire(_ listener: ListenerState, takeBacklog: Bool) {
        if listener.pendingAccepts > 0 {
            // By user data, not by descriptor: under `--sqpoll` the kernel thread may read the cancel only after
            // the close below, and a cancel by a closed descriptor finds nothing, leaving the accept armed on a
            // socket that then lives on in the ring, taking clients through a drain. Submitted now: without
            // `--sqpoll` it takes effect within the submit, so no accept competes with the backlog loop below.
            ring.cancel(acceptUserData(listener, multishot: true), all: true, userData: UserData(.cancel, slot: 0))
            ring.cancel(acceptUserData(listener, multishot: false), all: true, userData: UserData(.cancel, slot: 0))
            ring.submit()
        }
        guard takeBacklog else {
            Glibc.close(listener.fd)
            return
        }
        var backlog = Backlog(listener: listener.id, fd: listener.fd, owed: acceptBurst)
        if serve(&backlog) { backlogs.append(backlog) }
    }

    /// Takes clients from the backlogs that drains still owe, as slots free up.
    mutating func serveBacklogs() {
        let owing = backlogs
        backlogs = []
        for var backlog in owing where serve(&backlog) { backlogs.append(backlog) }
    }

    /// Accepts from a draining listener while slots are free. Returns false once nothing more is owed (the
    /// backlog is empty, a full backlog was taken, its listener left the plan, or the proxy is terminating),
    /// having closed its socket.
    private mutating func serve(_ backlog: inout Backlog) -> Bool {
        if phase == .draining, let listenerIndex = plan.listeners.firstIndex(where: { $0.id == backlog.listener }) {
            while backlog.owed > 0 && !table.isFull {
                let client = curing_accept4(backlog.fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
                guard client >= 0 else {
                    backlog.owed = 0  // EAGAIN: the backlog is empty
                    break
                }
                admit(client: client, listenerIndex: listenerIndex)
                backlog.owed -= 1
            }
            if backlog.owed > 0 { return true }
        }
        Glibc.close(backlog.fd)
        return false
    }
}

/// A draining listener's socket, kept open while the clients that waited in its backlog are taken.
struct Backlog {
    let listener: UInt32
    let fd: Int32
    /// Clients it may still take.
    var owed: Int
}
