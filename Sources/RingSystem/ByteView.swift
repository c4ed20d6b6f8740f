/// A read-only view of bytes held elsewhere (a connection's held bytes, a test's array): what the parsers
/// above this floor read, index by index, without a pointer of their own. Every read is bounds-checked; the
/// view neither copies nor owns: its maker keeps the bytes in place, unchanged, while it is used.
public struct ByteView {
    @usableFromInline let base: UnsafeRawPointer?
    public let count: Int

    /// A view of `buffer` (memory the caller keeps alive while the view is used).
    @inlinable
    public init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress
        count = buffer.count
    }

    /// No bytes.
    @inlinable public static var empty: ByteView { ByteView(UnsafeRawBufferPointer(start: nil, count: 0)) }

    /// Calls `body` with a view of `bytes`, valid only during the call.
    @inlinable
    public static func with<Result>(_ bytes: [UInt8], _ body: (ByteView) throws -> Result) rethrows -> Result {
        try bytes.withUnsafeBytes { try body(ByteView($0)) }
    }

    @inlinable
    public subscript(index: Int) -> UInt8 {
        @inline(__always) get {
            precondition(index >= 0 && index < count, "byte \(index) out of a view of \(count)")
            return base.unsafelyUnwrapped.load(fromByteOffset: index, as: UInt8.self)
        }
    }

    @inlinable public var first: UInt8? { count > 0 ? self[0] : nil }

    /// The `count` bytes from `offset`.
    @inlinable
    public func slice(from offset: Int, count: Int) -> ByteView {
        precondition(offset >= 0 && count >= 0 && offset + count <= self.count, "a slice past the end of a view")
        return ByteView(UnsafeRawBufferPointer(start: base.map { $0 + offset }, count: count))
    }
}
