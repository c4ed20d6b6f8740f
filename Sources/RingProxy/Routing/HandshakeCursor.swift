/// Reads the TLS handshake stream carried by a run of handshake records, stepping over each record's 5-byte
/// header, so that a message split across records (or across the recvs that brought them) reads as one.
///
/// `remaining` bounds what may be read (the enclosing field's length); a read past it, or past the end of
/// `bytes`, throws: nothing is ever read outside `bytes`. The caller has checked the record headers already
/// (`ClientHelloReader.frame`); the cursor still checks every index against `bytes.count`.
struct HandshakeCursor {
    private let bytes: ByteView
    /// The next byte to read in `bytes`.
    private var position: Int
    /// Fragment bytes left in the current record; at 0 the next read starts at a record header.
    private var leftInRecord: Int
    /// Bytes this cursor may still read.
    private(set) var remaining: Int

    /// A cursor at the first record header of `bytes`, allowed to read `limit` handshake bytes.
    init(records bytes: ByteView, limit: Int) {
        self.bytes = bytes
        position = 0
        leftInRecord = 0
        remaining = limit
    }

    /// A copy of this cursor that may read only the next `count` bytes (a nested field); nil if fewer remain.
    func field(_ count: Int) -> HandshakeCursor? {
        guard count >= 0, count <= remaining else { return nil }
        var copy = self
        copy.remaining = count
        return copy
    }

    /// Steps into the next record when the current one is used up. False when its header is not all there.
    private mutating func enterRecordIfNeeded() -> Bool {
        while leftInRecord == 0 {
            guard position + 5 <= bytes.count else { return false }
            leftInRecord = Int(bytes[position + 3]) << 8 | Int(bytes[position + 4])
            position += 5
        }
        return position < bytes.count
    }

    mutating func byte(or reason: String) throws(MalformedInput) -> UInt8 {
        guard remaining > 0, enterRecordIfNeeded() else { throw MalformedInput(reason) }
        let value = bytes[position]
        position += 1
        leftInRecord -= 1
        remaining -= 1
        return value
    }

    mutating func uint16(or reason: String) throws(MalformedInput) -> Int {
        let high = try byte(or: reason)
        return Int(high) << 8 | Int(try byte(or: reason))
    }

    mutating func uint24(or reason: String) throws(MalformedInput) -> Int {
        let high = try byte(or: reason)
        return Int(high) << 16 | (try uint16(or: reason))
    }

    /// Skips `count` bytes, a record's worth at a time.
    mutating func skip(_ count: Int, or reason: String) throws(MalformedInput) {
        guard count >= 0, count <= remaining else { throw MalformedInput(reason) }
        var left = count
        while left > 0 {
            guard enterRecordIfNeeded() else { throw MalformedInput(reason) }
            let step = min(left, leftInRecord, bytes.count - position)
            position += step
            leftInRecord -= step
            remaining -= step
            left -= step
        }
    }
}
