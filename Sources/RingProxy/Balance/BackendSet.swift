/// A few backends, kept inline (no allocation): those a connection already tried, so a retry goes
/// elsewhere, or those a pick was refused. Holds up to `capacity` (the retry limit stays below it).
public struct BackendSet: Sendable {
    public static let capacity = 9
    private var members = InlineArray<9, Int32>(repeating: -1)
    /// One byte: a set lives in every connection slot.
    private var storedCount: UInt8 = 0

    @inline(__always) public var count: Int { Int(storedCount) }

    public init() {}

    @inline(__always)
    public func contains(_ backend: BackendID) -> Bool {
        for index in 0..<count where members[index] == backend.rawValue { return true }
        return false
    }

    /// Adds `backend`; once full, further ones are dropped.
    @inline(__always)
    public mutating func insert(_ backend: BackendID) {
        guard !contains(backend), count < Self.capacity else { return }
        members[count] = backend.rawValue
        storedCount += 1
    }

    public var isEmpty: Bool { count == 0 }
}
