/// The buffers one direction of a tunnel has received and not yet finished sending, oldest first, linked
/// through the buffers themselves: `BufferLinks` keeps, for every buffer of the worker's ring, the next one
/// in its chain and the bytes it holds. A buffer is in at most one chain at a time (the ring hands it to one
/// receive), so one pair of arrays per worker serves every connection, and a chain costs six bytes.
///
/// A chain has no fixed capacity: a multishot receive may land several buffers between two loop turns, and
/// every one must be kept. Backpressure is the tunnel's: it stops receiving once a chain is long.
public struct BufferChain: Sendable, Equatable {
    static let end = UInt16.max
    public private(set) var head = BufferChain.end
    private var tail = BufferChain.end
    public private(set) var count: UInt16 = 0

    public init() {}

    @inline(__always) public var isEmpty: Bool { count == 0 }

    @inline(__always)
    public mutating func append(_ buffer: UInt16, length: UInt32, _ links: borrowing BufferLinks) {
        links.next[Int(buffer)] = Self.end
        links.length[Int(buffer)] = length
        if tail == Self.end { head = buffer } else { links.next[Int(tail)] = buffer }
        tail = buffer
        count += 1
    }

    /// The bytes the head buffer holds. The chain must not be empty.
    @inline(__always)
    public func headLength(_ links: borrowing BufferLinks) -> UInt32 { links.length[Int(head)] }

    /// Takes every buffer after the first `kept` off the chain and returns them as a chain of their own
    /// (still linked through `links`) to give back at once.
    public mutating func detach(keeping kept: UInt16, _ links: borrowing BufferLinks) -> BufferChain {
        guard kept > 0 else {
            defer { self = BufferChain() }
            return self
        }
        guard count > kept else { return BufferChain() }
        let lastKept = buffer(at: kept - 1, links)
        var rest = BufferChain()
        rest.head = links.next[Int(lastKept)]
        rest.tail = tail
        rest.count = count - kept
        links.next[Int(lastKept)] = Self.end
        tail = lastKept
        count = kept
        return rest
    }

    /// Takes the first `taken` buffers (at most `count`) off the chain and returns them as a chain of their own.
    public mutating func removeFirst(_ taken: UInt16, _ links: borrowing BufferLinks) -> BufferChain {
        guard taken < count else {
            defer { self = BufferChain() }
            return self
        }
        guard taken > 0 else { return BufferChain() }
        var first = BufferChain()
        first.head = head
        first.tail = buffer(at: taken - 1, links)
        first.count = taken
        head = links.next[Int(first.tail)]
        links.next[Int(first.tail)] = Self.end
        count -= taken
        return first
    }

    /// The buffer `index` places after the head (which must be in the chain).
    @inline(__always)
    public func buffer(at index: UInt16, _ links: borrowing BufferLinks) -> UInt16 {
        var buffer = head
        for _ in 0..<index { buffer = links.next[Int(buffer)] }
        return buffer
    }

    @inline(__always) @discardableResult
    public mutating func removeHead(_ links: borrowing BufferLinks) -> UInt16 {
        let buffer = head
        head = links.next[Int(buffer)]
        if head == Self.end { tail = Self.end }
        count -= 1
        return buffer
    }
}

/// The links of every buffer of a worker's ring (see `BufferChain`).
public struct BufferLinks: ~Copyable {
    let next: FixedArray<UInt16>
    let length: FixedArray<UInt32>

    public init(buffers: Int) {
        next = FixedArray(repeating: BufferChain.end, count: buffers)
        length = FixedArray(repeating: 0, count: buffers)
    }
}
