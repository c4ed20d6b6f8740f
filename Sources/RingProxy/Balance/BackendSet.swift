/// The backends a connection has already tried, so a retry goes elsewhere. Holds up to `capacity` indices
/// (the retry limit keeps attempts below it).
public struct BackendSet: Sendable {
    public static let capacity = 9
    private var members = InlineArray<9, Int32>(repeating: -1)
    public private(set) var count: Int = 0

    public init() {}

    @inline(__always)
    public func contains(_ backend: Int) -> Bool {
        for index in 0..<count where members[index] == Int32(backend) { return true }
        return false
    }

    @inline(__always)
    public mutating func insert(_ backend: Int) {
        guard !contains(backend), count < Self.capacity else { return }
        members[count] = Int32(backend)
        count += 1
    }

    public var isEmpty: Bool { count == 0 }
}
