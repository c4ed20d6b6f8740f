import Foundation
@testable import RingProxy

/// Captures and hand-built inputs for the routing parsers' tests.
enum RoutingFixtures {
    static let captures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Captures")
    static let fuzz = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz")

    /// A recorded capture (Captures/README.md says how each was made).
    static func capture(_ folder: String, _ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: captures.appendingPathComponent(folder).appendingPathComponent(name)))
    }

    /// Every file of a folder, by name.
    static func files(in folder: URL) throws -> [(name: String, bytes: [UInt8])] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map { name in
            (name, [UInt8](try Data(contentsOf: folder.appendingPathComponent(name))))
        }
    }
}

/// Builds TLS handshake records and ClientHellos byte by byte.
enum TLSBuilder {
    static func uint16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    static func uint24(_ value: Int) -> [UInt8] { [UInt8(value >> 16 & 0xFF)] + uint16(value) }

    static func extensionBlock(_ type: Int, _ body: [UInt8]) -> [UInt8] { uint16(type) + uint16(body.count) + body }

    static func serverName(_ names: [(type: UInt8, name: [UInt8])]) -> [UInt8] {
        let list = names.flatMap { [$0.type] + uint16($0.name.count) + $0.name }
        return extensionBlock(0, uint16(list.count) + list)
    }

    static func serverName(_ name: String) -> [UInt8] { serverName([(0, Array(name.utf8))]) }

    static func alpn(_ protocols: [String]) -> [UInt8] {
        let list = protocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        return extensionBlock(16, uint16(list.count) + list)
    }

    /// RFC 7685's padding extension: `count` zero bytes.
    static func padding(_ count: Int) -> [UInt8] { extensionBlock(21, [UInt8](repeating: 0, count: count)) }

    /// A ClientHello handshake message (type 1, 3-byte length) with these extensions; nil extensions leaves
    /// the extensions block out entirely (as SSL 3.0 clients did).
    static func hello(_ extensions: [[UInt8]]?, sessionID: Int = 32) -> [UInt8] {
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 0xA5, count: 32)
        body += [UInt8(sessionID)] + [UInt8](repeating: 0x5A, count: sessionID)
        body += uint16(4) + [0x13, 0x01, 0x13, 0x02]
        body += [1, 0]
        if let extensions {
            let all = extensions.flatMap { $0 }
            body += uint16(all.count) + all
        }
        return [1] + uint24(body.count) + body
    }

    /// The handshake stream cut into handshake records of at most `size` bytes each.
    static func records(_ message: [UInt8], size: Int, version: [UInt8] = [3, 1]) -> [UInt8] {
        stride(from: 0, to: message.count, by: size).flatMap { start -> [UInt8] in
            let fragment = message[start..<min(start + size, message.count)]
            return [22] + version + uint16(fragment.count) + fragment
        }
    }

    /// The handshake bytes of a run of records (their fragments joined).
    static func handshake(of records: [UInt8]) -> [UInt8] {
        var position = 0
        var message: [UInt8] = []
        while position + 5 <= records.count {
            let length = Int(records[position + 3]) << 8 | Int(records[position + 4])
            message += records[position + 5..<min(position + 5 + length, records.count)]
            position += 5 + length
        }
        return message
    }
}

extension ClientHelloReader {
    static func parse(_ bytes: [UInt8]) -> ParseOutcome<ClientHello> {
        bytes.withUnsafeBytes { parse(ByteView($0)) }
    }

    static func parse(_ bytes: ArraySlice<UInt8>) -> ParseOutcome<ClientHello> {
        bytes.withUnsafeBytes { parse(ByteView($0)) }
    }
}

extension ProxyHeaderReader {
    static func parse(_ bytes: [UInt8]) -> ParseOutcome<ReceivedProxyHeader> {
        bytes.withUnsafeBytes { parse(ByteView($0)) }
    }

    static func parse(_ bytes: ArraySlice<UInt8>) -> ParseOutcome<ReceivedProxyHeader> {
        bytes.withUnsafeBytes { parse(ByteView($0)) }
    }
}

extension ParseOutcome {
    var isInvalid: Bool {
        if case .invalid = self { return true }
        return false
    }

    var reason: String? {
        if case .invalid(let reason) = self { return reason }
        return nil
    }

    var value: Value? {
        if case .done(let value, _) = self { return value }
        return nil
    }
}
