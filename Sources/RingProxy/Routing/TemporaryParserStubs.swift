// TEMPORARY: stand-ins for the parsers of branch `parsers` (same API), so that this branch builds until
// that branch is merged. Deleted by the merge.
public enum ParseOutcome<Value: Sendable>: Sendable { case needMore; case done(Value, consumed: Int); case invalid(String) }
public struct ClientHello: Sendable, Equatable { public var serverName: String?; public var alpn: [String] }
public enum ClientHelloReader { public static func parse(_ bytes: UnsafeRawBufferPointer) -> ParseOutcome<ClientHello> { .invalid("stub") } }
public struct ReceivedProxyHeader: Sendable, Equatable { public var source: SocketAddress?; public var destination: SocketAddress? }
public enum ProxyHeaderReader {
    public static let maximumLength = 536
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> ParseOutcome<ReceivedProxyHeader> { .invalid("stub") }
}
public struct AddressBlock: Sendable, Equatable {
    let text: String
    public init?(_ text: String) { guard text.contains("/") else { return nil }; self.text = text }
    public func contains(_ address: SocketAddress) -> Bool { false }
}
public struct AddressBlockList: Sendable, Equatable {
    let blocks: [AddressBlock]
    public init(_ blocks: [AddressBlock]) { self.blocks = blocks }
    public var isEmpty: Bool { blocks.isEmpty }
    public func contains(_ address: SocketAddress) -> Bool { blocks.contains { $0.contains(address) } }
}
public struct ServerNamePattern: Sendable, Equatable {
    let text: String
    public init?(_ text: String) { self.text = text.lowercased() }
    public func matches(_ serverName: String) -> Bool { serverName == text }
}
