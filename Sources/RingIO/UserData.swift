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
/// Layout: `kind:8 | direction:1 | generation:23 | slot:32`. Operations that belong to no connection slot
/// are made by their own constructors (`accept`, `zeroCopySend`, `check`, `ringWide`), which say what the
/// bits carry, and read back through accessors named for it (`listener`, `lentBuffer`, `target`, ...).
public struct UserData: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt64

    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let generationMask: UInt32 = (1 << 23) - 1

    /// An operation of the connection in `slot` (of that slot's `generation`), for one of its directions.
    @inlinable @inline(__always)
    public init(_ kind: OperationKind, slot: UInt32, generation: UInt32 = 0, direction: UInt8 = 0) {
        rawValue = UInt64(kind.rawValue) << 56
            | UInt64(direction & 1) << 55
            | UInt64(generation & Self.generationMask) << 32
            | UInt64(slot)
    }

    /// An accept on the listener `listener` (its id); `multishot` tells a multishot accept from a single-shot one.
    @inlinable @inline(__always)
    public static func accept(listener: UInt32, multishot: Bool) -> UserData {
        UserData(.accept, slot: listener, direction: multishot ? 1 : 0)
    }

    /// A zero-copy send for the connection in `slot`: it carries the provided buffer it lends the kernel (its
    /// notification gives it back) instead of the slot's generation, which the tunnel's count makes needless.
    @inlinable @inline(__always)
    public static func zeroCopySend(slot: UInt32, buffer: UInt16, direction: UInt8) -> UserData {
        UserData(.sendZeroCopy, slot: slot, generation: UInt32(buffer), direction: direction)
    }

    /// An operation of a health check (`.check`: its connect, send or read; with `deadline`, the timeout that
    /// bounds the whole check) or its connect's linked timeout (`.connectTimeout`), for target `target`.
    /// `number` numbers the checks, so that the deadline of a finished check never touches the next one.
    @inlinable @inline(__always)
    public static func check(_ kind: OperationKind = .check, target: UInt32, number: UInt32, deadline: Bool = false) -> UserData {
        UserData(kind, slot: target, generation: number, direction: deadline ? 1 : 0)
    }

    /// An operation of the ring's owner, not of a connection: its tick, its control read, a cancel or close
    /// whose completion is ignored. `tag` tells apart several of one kind (0 when there is one).
    @inlinable @inline(__always)
    public static func ringWide(_ kind: OperationKind, tag: UInt32 = 0) -> UserData {
        UserData(kind, slot: tag)
    }

    @inlinable @inline(__always) public var kind: OperationKind? { OperationKind(rawValue: UInt8(truncatingIfNeeded: rawValue >> 56)) }
    @inlinable @inline(__always) public var direction: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 55) & 1 }
    @inlinable @inline(__always) public var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) & Self.generationMask }
    @inlinable @inline(__always) public var slot: UInt32 { UInt32(truncatingIfNeeded: rawValue) }

    /// Of an `accept`: the listener's id, and whether it is the multishot accept.
    @inlinable @inline(__always) public var listener: UInt32 { slot }
    @inlinable @inline(__always) public var isMultishot: Bool { direction == 1 }
    /// Of a `zeroCopySend`: the buffer it lent the kernel.
    @inlinable @inline(__always) public var lentBuffer: UInt16 { UInt16(truncatingIfNeeded: generation) }
    /// Of a `check`: the target, the check's number, whether it is the check's deadline, and the user data of
    /// the check's operations (the same without the deadline mark).
    @inlinable @inline(__always) public var target: UInt32 { slot }
    @inlinable @inline(__always) public var checkNumber: UInt32 { generation }
    @inlinable @inline(__always) public var isDeadline: Bool { direction == 1 }
    @inlinable @inline(__always) public var checkOperation: UserData { .check(kind ?? .check, target: target, number: checkNumber) }
    /// Of a `ringWide` operation: its tag.
    @inlinable @inline(__always) public var tag: UInt32 { slot }
}
