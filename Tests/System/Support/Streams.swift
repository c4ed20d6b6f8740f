@testable import RingProxy

/// A deterministic pseudo-random byte stream: both ends generate it from the seed, so every byte can be
/// checked without keeping the stream. Byte `i` depends only on the seed and `i`, never on how the stream
/// was cut into chunks.
struct PatternStream {
    private var random: FastRandom
    private var word: UInt64 = 0
    private var wordBytesLeft = 0

    init(seed: UInt64) { random = FastRandom(seed: seed) }

    /// Writes the next `buffer.count` bytes of the stream into `buffer`.
    mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var index = 0
        while index < buffer.count && wordBytesLeft > 0 {
            buffer[index] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            wordBytesLeft -= 1
            index += 1
        }
        while buffer.count - index >= 8 {
            buffer.storeBytes(of: random.next(), toByteOffset: index, as: UInt64.self)
            index += 8
        }
        if index < buffer.count {
            word = random.next()
            wordBytesLeft = 8
            while index < buffer.count {
                buffer[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                wordBytesLeft -= 1
                index += 1
            }
        }
    }

    mutating func next(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { fill($0) }
        return bytes
    }
}

/// A 64-bit hash of a byte stream fed in arbitrary chunks, eight bytes at a time (fast enough in a debug
/// build to check hundreds of megabytes).
struct StreamHash: Equatable {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    private(set) var count = 0
    private var partial: UInt64 = 0
    private var partialBytes = 0

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count && (partialBytes > 0 || bytes.count - index < 8) {
            partial |= UInt64(bytes[index]) << (8 * UInt64(partialBytes))
            partialBytes += 1
            index += 1
            if partialBytes == 8 { mix(partial) }
        }
        while bytes.count - index >= 8 {
            mix(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            index += 8
        }
        while index < bytes.count {
            partial |= UInt64(bytes[index]) << (8 * UInt64(partialBytes))
            partialBytes += 1
            index += 1
        }
        count += bytes.count
    }

    mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }

    /// The digest of everything added so far.
    var digest: String {
        var copy = self
        if copy.partialBytes > 0 { copy.mix(copy.partial ^ UInt64(copy.partialBytes) << 56) }
        return "\(count) " + String(copy.value, radix: 16)
    }

    private mutating func mix(_ word: UInt64) {
        value = (value ^ word) &* 0x0000_0100_0000_01B3
        value ^= value >> 29
        partial = 0
        partialBytes = 0
    }

    static func == (lhs: StreamHash, rhs: StreamHash) -> Bool { lhs.digest == rhs.digest }
}
