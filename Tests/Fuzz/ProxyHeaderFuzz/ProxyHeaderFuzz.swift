import RingProxy

// libFuzzer target for the PROXY header reader (Sources/RingProxy/Routing): every input is the first bytes
// of a connection from a trusted balancer. The reader may answer needMore, done or invalid, nothing else: a
// trap, an out-of-bounds read (ASan) or a hang is a bug, and so is a done header longer than its input or
// the maximum, or an answer that a longer input would change. Built and run by `make fuzz-routing`.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyHeaderReader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let whole = ProxyHeaderReader.parse(ByteView(bytes))
    if case .done(let header, let consumed) = whole {
        precondition(consumed > 0 && consumed <= size && consumed <= ProxyHeaderReader.maximumLength, "consumed \(consumed) of \(size)")
        precondition((header.source == nil) == (header.destination == nil), "both addresses or neither")
        precondition(bytes[0] != UInt8(ascii: "P") || consumed <= ProxyHeaderReader.v1MaximumLength, "a v1 line of \(consumed) bytes")
        // The header needs all its bytes, and nothing after them.
        precondition(ProxyHeaderReader.parse(ByteView(UnsafeRawBufferPointer(rebasing: bytes[..<consumed]))) == whole)
        precondition(ProxyHeaderReader.parse(ByteView(UnsafeRawBufferPointer(rebasing: bytes[..<(consumed - 1)]))) == .needMore)
    }
    // A prefix found invalid stays invalid; a prefix found done is the same header.
    let step = max(1, size / 64)
    for length in stride(from: 0, to: size, by: step) {
        switch ProxyHeaderReader.parse(ByteView(UnsafeRawBufferPointer(rebasing: bytes[..<length]))) {
        case .needMore:
            break
        case .invalid:
            guard case .invalid = whole else { preconditionFailure("a prefix of \(length) bytes is invalid, the whole is \(whole)") }
        case let prefix:
            precondition(prefix == whole, "a prefix of \(length) bytes is \(prefix), the whole is \(whole)")
        }
    }
    return 0
}
