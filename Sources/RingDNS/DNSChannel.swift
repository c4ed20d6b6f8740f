import CAres
import Glibc
import RingSystem

/// A c-ares channel driven by its owner's thread: lookups are started here and answered by callbacks that
/// run inside `wait`, on that same thread. Nothing here blocks but `wait` (a poll on the channel's sockets,
/// bounded by the caller). Not thread-safe: one thread owns a channel.
public final class DNSChannel {
    private var channel: ares_channel?
    private let count = PendingCount()
    /// Lookups started and not yet answered.
    public var pending: Int { count.value }

    /// `servers`: "host:port" entries (IPv6 in brackets) instead of /etc/resolv.conf's; `timeoutMilliseconds`
    /// per try.
    public init(servers: [String]?, timeoutMilliseconds: Int, tries: Int) throws(DNSChannelError) {
        _ = Self.library
        var options = ares_options()
        options.timeout = Int32(max(1, timeoutMilliseconds))
        options.tries = Int32(max(1, tries))
        let status = ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)
        guard status == ARES_SUCCESS else { throw DNSChannelError(reason: Self.describe(status)) }
        if let servers, !servers.isEmpty {
            let result = ares_set_servers_ports_csv(channel, servers.joined(separator: ","))
            guard result == ARES_SUCCESS else {
                ares_destroy(channel)
                channel = nil
                throw DNSChannelError(reason: "resolvers \(servers): \(Self.describe(result))")
            }
        }
    }

    deinit {
        // Answers every query still pending with ARES_EDESTRUCTION, which releases their callbacks.
        if let channel { ares_destroy(channel) }
    }

    /// The A and AAAA (or only one, by `family`: AF_INET, AF_INET6, AF_UNSPEC) addresses of `name`, with
    /// port 0, from the hosts file and then DNS, as getaddrinfo would.
    public func lookupAddresses(_ name: String, family: Int32, _ done: @escaping (DNSAnswer<SocketAddress>) -> Void) {
        count.value += 1
        var hints = ares_addrinfo_hints()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        // No RFC 6724 sorting: c-ares would connect a UDP socket per address to sort them; discovery sorts.
        hints.ai_flags = ARES_AI_NOSORT
        let box = Unmanaged.passRetained(Callback<SocketAddress>(count, done)).toOpaque()
        ares_getaddrinfo(channel, name, nil, &hints, { context, status, _, result in
            let callback = Unmanaged<Callback<SocketAddress>>.fromOpaque(context!).takeRetainedValue()
            defer { if let result { ares_freeaddrinfo(result) } }
            guard status == ARES_SUCCESS, let result else { return callback.finish(DNSChannel.answer(failing: status)) }
            var addresses: [SocketAddress] = []
            var ttl = Int.max
            var node = result.pointee.nodes
            while let entry = node {
                if let address = entry.pointee.ai_addr {
                    var storage = sockaddr_storage()
                    let length = Int(entry.pointee.ai_addrlen)
                    withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: length)) }
                    let found = SocketAddress(storage: storage, length: entry.pointee.ai_addrlen).withPort(0)
                    if !addresses.contains(found) { addresses.append(found) }
                }
                ttl = min(ttl, Int(entry.pointee.ai_ttl))
                node = entry.pointee.ai_next
            }
            var cname = result.pointee.cnames
            while let alias = cname {
                ttl = min(ttl, Int(alias.pointee.ttl))
                cname = alias.pointee.next
            }
            callback.finish(addresses.isEmpty ? .none("no address records") : .found(addresses, ttl: max(0, ttl)))
        }, box)
    }

    /// The SRV records of `name` (the search list applies, as for a short name in Kubernetes).
    public func lookupSRV(_ name: String, _ done: @escaping (DNSAnswer<SRVRecord>) -> Void) {
        count.value += 1
        let box = Unmanaged.passRetained(Callback<SRVRecord>(count, done)).toOpaque()
        ares_search(channel, name, Int32(ns_c_in.rawValue), Int32(ns_t_srv.rawValue), { context, status, _, message, length in
            let callback = Unmanaged<Callback<SRVRecord>>.fromOpaque(context!).takeRetainedValue()
            guard status == ARES_SUCCESS, let message, length > 0 else { return callback.finish(DNSChannel.answer(failing: status)) }
            var reply: UnsafeMutablePointer<ares_srv_reply>?
            let parsed = ares_parse_srv_reply(message, length, &reply)
            guard parsed == ARES_SUCCESS else { return callback.finish(DNSChannel.answer(failing: parsed)) }
            defer { ares_free_data(reply) }
            var records: [SRVRecord] = []
            var entry = reply
            while let record = entry {
                records.append(SRVRecord(
                    target: String(cString: record.pointee.host), port: record.pointee.port,
                    weight: record.pointee.weight, priority: record.pointee.priority))
                entry = record.pointee.next
            }
            let bytes = Array(UnsafeBufferPointer(start: message, count: Int(length)))
            let ttl = DNSMessage.minimumAnswerTTL(bytes, type: UInt16(ns_t_srv.rawValue)) ?? 0
            callback.finish(records.isEmpty ? .none("no SRV records") : .found(records, ttl: ttl))
        }, box)
    }

    /// Waits up to `milliseconds` (less when a query's retry is due sooner) for the channel's sockets, or for
    /// `extra` to be readable, and lets c-ares read, send and time out what is due (answers call back here).
    /// Returns true when `extra` is readable.
    @discardableResult
    public func wait(milliseconds: Int, extra: Int32? = nil) -> Bool {
        var sockets = [ares_socket_t](repeating: ARES_SOCKET_BAD, count: Int(ARES_GETSOCK_MAXNUM))
        let bits = ares_getsock(channel, &sockets, ARES_GETSOCK_MAXNUM)
        var fds: [pollfd] = []
        for index in 0..<Int(ARES_GETSOCK_MAXNUM) {
            var events: Int16 = 0
            if cares_socket_readable(bits, Int32(index)) != 0 { events |= Int16(POLLIN) }
            if cares_socket_writable(bits, Int32(index)) != 0 { events |= Int16(POLLOUT) }
            if events != 0 { fds.append(pollfd(fd: sockets[index], events: events, revents: 0)) }
        }
        let channelCount = fds.count
        if let extra { fds.append(pollfd(fd: extra, events: Int16(POLLIN), revents: 0)) }
        var bound = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        var due = timeval()
        let next = ares_timeout(channel, &bound, &due).pointee
        let timeout = Int32(max(0, min(milliseconds, next.tv_sec * 1000 + next.tv_usec / 1000)))
        let ready = poll(&fds, nfds_t(fds.count), timeout)
        var processed = false
        if ready > 0 {
            for entry in fds.prefix(channelCount) where entry.revents != 0 {
                let readable = entry.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
                let writable = entry.revents & Int16(POLLOUT) != 0
                ares_process_fd(channel, readable ? entry.fd : ARES_SOCKET_BAD, writable ? entry.fd : ARES_SOCKET_BAD)
                processed = true
            }
        }
        // Timeouts and retries are handled by a call with no socket.
        if !processed { ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD) }
        guard let extra, ready > 0, let last = fds.last, last.fd == extra else { return false }
        return last.revents != 0
    }

    /// Waits until every pending lookup is answered (c-ares bounds each by its timeout and tries).
    public func finish() {
        while pending > 0 { wait(milliseconds: 1000) }
    }

    private static func answer<Record>(failing status: Int32) -> DNSAnswer<Record> {
        switch status {
        case ARES_ENOTFOUND: .none("no such name (NXDOMAIN)")
        case ARES_ENODATA: .none("no records")
        default: .failed(describe(status))
        }
    }

    static func describe(_ status: Int32) -> String { String(cString: ares_strerror(status)) }

    /// ares_library_init, once per process.
    private static let library: Int32 = ares_library_init(ARES_LIB_INIT_ALL)

    /// Shared with the callbacks, which may run after the channel began to deinitialise (ares_destroy
    /// answers what is pending).
    private final class PendingCount {
        var value = 0
    }

    private final class Callback<Record: Sendable & Equatable> {
        let count: PendingCount
        let done: (DNSAnswer<Record>) -> Void
        init(_ count: PendingCount, _ done: @escaping (DNSAnswer<Record>) -> Void) {
            self.count = count
            self.done = done
        }
        func finish(_ answer: DNSAnswer<Record>) {
            count.value -= 1
            done(answer)
        }
    }
}

/// Why a channel could not be made (a bad resolver address, no memory).
public struct DNSChannelError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { "cannot start the DNS resolver: \(reason)" }
}
