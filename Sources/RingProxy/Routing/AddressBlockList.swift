/// The blocks of one source rule (`allow`, `deny`, `accept_proxy`), checked in order: an address matches the
/// list when it is in any block. An empty list matches nothing; what an empty `allow` means (everyone) is the
/// rule's business.
public struct AddressBlockList: Sendable, Equatable, CustomStringConvertible {
    public let blocks: [AddressBlock]

    public init(_ blocks: [AddressBlock]) {
        self.blocks = blocks
    }

    public var isEmpty: Bool { blocks.isEmpty }

    /// Whether any block holds the address: a linear scan without allocation (lists are tens of blocks).
    public func contains(_ address: SocketAddress) -> Bool {
        guard let number = address.addressNumber else { return false }
        for index in blocks.indices {  // indices, not `for block in`: no iterator, even unoptimised
            let block = blocks[index]
            if block.isIPv4 == number.isIPv4, number.high & block.maskHigh == block.high, number.low & block.maskLow == block.low {
                return true
            }
        }
        return false
    }

    public var description: String { "[" + blocks.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
}
