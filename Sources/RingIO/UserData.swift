/// What a submitted operation was for, carried in the top byte of its `user_data`.
public enum OperationKind: UInt8, Sendable {
    case accept = 1
    case connect
    case connectTimeout
    case recv
    case send
    case shutdown
    case cancel
    case close
    case tick
    case control
    /// The send of a PROXY protocol header.
    case sendHeader
    /// A health check's connect.
    case check
    /// A zero-copy send; its `generation` bits carry the buffer, which its notification releases.
    case sendZeroCopy
    /// A receive of a client's first bytes by a listener's routing stage, before any backend is chosen.
    case preread
}

/// The 64-bit `user_data` of one operation: its kind, the connection slot it belongs to, and the slot's
/// generation, so a completion that arrives after its slot was reused is recognised as stale.
///
/// Layout: `kind:8 | direction:1 | generation:23 | slot:32`. Accepts use the direction bit to mark a
/// multishot accept and the slot for the listener's id.
public struct UserData: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt64

    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let generationMask: UInt32 = (1 << 23) - 1

    @inlinable @inline(__always)
    public init(_ kind: OperationKind, slot: UInt32, generation: UInt32 = 0, direction: UInt8 = 0) {
        rawValue = UInt64(kind.rawValue) << 56
            | UInt64(direction & 1) << 55
            | UInt64(generation & Self.generationMask) << 32
            | UInt64(slot)
    }

    @inlinable @inline(__always) public var kind: OperationKind? { OperationKind(rawValue: UInt8(truncatingIfNeeded: rawValue >> 56)) }
    @inlinable @inline(__always) public var direction: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 55) & 1 }
    @inlinable @inline(__always) public var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) & Self.generationMask }
    @inlinable @inline(__always) public var slot: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
}
