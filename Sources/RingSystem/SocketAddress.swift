import CURing
import Glibc

/// An IPv4 or IPv6 socket address, stored as the kernel wants it.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline var storage: sockaddr_storage
    public let length: socklen_t

    public init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// Where in a `SocketAddress` its `sockaddr` is, for the ring floor to hand the kernel one kept in place.
    public static let sockaddrOffset = MemoryLayout<SocketAddress>.offset(of: \SocketAddress.storage)!

    /// The IPv4 or IPv6 address stored as a `sockaddr` at `bytes` (at most `capacity` bytes); nil for any other
    /// family (zeroed memory: no address was kept).
    public init?(bytes: UnsafeRawPointer, capacity: Int) {
        let family = Int32(bytes.loadUnaligned(as: sa_family_t.self))
        let length = family == AF_INET ? MemoryLayout<sockaddr_in>.size : family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : 0
        guard length > 0, length <= capacity else { return nil }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: bytes, count: length)) }
        self.init(storage: storage, length: socklen_t(length))
    }

    /// Parses a numeric address: `1.2.3.4:80`, `[::1]:80`, or `:80` (every IPv4 interface).
    public init?(numeric text: String) {
        guard let (host, port) = Self.split(text) else { return nil }
        self.init(numericHost: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public init?(numericHost host: String, port: UInt16) {
        var storage = sockaddr_storage()
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr = v4
            withUnsafeBytes(of: address) { bytes in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
            }
            self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in>.size))
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_addr = v6
            withUnsafeBytes(of: address) { bytes in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
            }
            self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
        } else {
            return nil
        }
    }

    /// Splits `host:port` or `[v6]:port` into its parts; nil when the port is missing or out of range.
    public static func split(_ text: String) -> (host: String, port: UInt16)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            guard !host.contains(":") else { return nil }  // bare IPv6 needs brackets
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { return nil }
        return (String(host), port)
    }

    /// Resolves `host` (a name or a numeric address, IPv6 with or without brackets) with getaddrinfo,
    /// preferring IPv4.
    public static func resolve(host: String, port: UInt16) throws(AddressError) -> SocketAddress {
        let host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let numeric = SocketAddress(numericHost: host, port: port) { return numeric }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw AddressError.unresolvable(host: host, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var chosen = first
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if entry.pointee.ai_family == AF_INET { chosen = entry; break }
            cursor = entry.pointee.ai_next
        }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(start: chosen.pointee.ai_addr, count: Int(chosen.pointee.ai_addrlen)))
        }
        return SocketAddress(storage: storage, length: chosen.pointee.ai_addrlen)
    }

    @inlinable public var family: Int32 { Int32(storage.ss_family) }

    @inlinable public var port: UInt16 {
        withUnsafeBytes(of: storage) { bytes in
            family == AF_INET6
                ? UInt16(bigEndian: bytes.load(as: sockaddr_in6.self).sin6_port)
                : UInt16(bigEndian: bytes.load(as: sockaddr_in.self).sin_port)
        }
    }

    public func withPort(_ port: UInt16) -> SocketAddress {
        var copy = self
        withUnsafeMutableBytes(of: &copy.storage) { bytes in
            if family == AF_INET6 {
                bytes.storeBytes(of: port.bigEndian, toByteOffset: MemoryLayout<sockaddr_in6>.offset(of: \.sin6_port)!, as: UInt16.self)
            } else {
                bytes.storeBytes(of: port.bigEndian, toByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_port)!, as: UInt16.self)
            }
        }
        return copy
    }

    /// The IP address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    public var addressBytes: [UInt8] {
        withUnsafeBytes(of: storage) { bytes in
            if family == AF_INET6 {
                let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
                return Array(bytes[offset..<offset + 16])
            }
            let offset = MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!
            return Array(bytes[offset..<offset + 4])
        }
    }

    /// 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address: reachable from this machine only.
    public var isLoopback: Bool {
        let bytes = addressBytes
        if family == AF_INET { return bytes[0] == 127 }
        if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
        return bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
    }

    /// The numeric host, without brackets or port.
    public var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: storage) { bytes in
            if family == AF_INET6 {
                var address = bytes.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
            } else {
                var address = bytes.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
            }
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    @inlinable public func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result) rethrows -> Result {
        try withUnsafeBytes(of: storage) { bytes in
            try body(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    @inlinable public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        lhs.length == rhs.length && withUnsafeBytes(of: lhs.storage) { left in
            withUnsafeBytes(of: rhs.storage) { right in
                left.prefix(Int(lhs.length)).elementsEqual(right.prefix(Int(rhs.length)))
            }
        }
    }

    @inlinable public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: storage) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length)))) }
    }
}

public enum AddressError: Error, Equatable, CustomStringConvertible {
    case unresolvable(host: String, reason: String)

    public var description: String {
        switch self {
        case .unresolvable(let host, let reason): "cannot resolve host '\(host)': \(reason)"
        }
    }
}
