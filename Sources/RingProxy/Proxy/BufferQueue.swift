/// The provided buffers one direction of a tunnel has received and not yet finished sending, oldest first.
/// The head is the one being sent. Fixed capacity, stored inline: a tunnel never allocates.
public struct BufferQueue: Sendable {
    /// Buffers a direction may hold before it stops receiving (its backpressure bound).
    public static let capacity = 4
    private var ids = InlineArray<4, UInt16>(repeating: 0)
    private var lengths = InlineArray<4, UInt32>(repeating: 0)
    private var start: UInt8 = 0
    public private(set) var count: UInt8 = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { Int(count) == Self.capacity }

    @inline(__always)
    public mutating func append(buffer: UInt16, length: UInt32) {
        assert(!isFull, "a direction received more buffers than its queue holds")
        let slot = (Int(start) + Int(count)) % Self.capacity
        ids[slot] = buffer
        lengths[slot] = length
        count += 1
    }

    /// The buffer being sent and its length. The queue must not be empty.
    @inline(__always)
    public var head: (buffer: UInt16, length: UInt32) {
        (ids[Int(start)], lengths[Int(start)])
    }

    @inline(__always) @discardableResult
    public mutating func removeHead() -> UInt16 {
        let buffer = ids[Int(start)]
        start = UInt8((Int(start) + 1) % Self.capacity)
        count -= 1
        return buffer
    }
}
