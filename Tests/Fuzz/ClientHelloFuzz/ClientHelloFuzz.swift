import RingProxy

// libFuzzer target for the ClientHello reader (Sources/RingProxy/Routing): every input is taken twice, as the
// first bytes of a connection, and framed as a handshake stream into TLS records of a size its first byte
// picks (so that mutations reach the hello's fields without breaking the record framing). The reader may
// answer needMore, done or invalid, nothing else: a trap, an out-of-bounds read (ASan) or a hang is a bug,
// and so is an answer that a longer input would change (see `checkPrefixes`). Built and run by
// `make fuzz-routing`.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientHelloReader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    check(input)
    if size > 1 {
        let recordSize = input[0] == 0 ? 16_384 : Int(input[0])
        let framed = records(UnsafeRawBufferPointer(rebasing: input[1...]), size: recordSize)
        // An exact-size heap copy, so that ASan sees a read past the end.
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: framed.count, alignment: 1)
        defer { copy.deallocate() }
        copy.copyBytes(from: framed)
        check(UnsafeRawBufferPointer(copy))
    }
    return 0
}

private func check(_ bytes: UnsafeRawBufferPointer) {
    let whole = ClientHelloReader.parse(ByteView(bytes))
    if case .done(let hello, let consumed) = whole {
        precondition(consumed == 0, "a ClientHello is forwarded whole")
        if let name = hello.serverName {
            precondition(ServerNamePattern(name)?.matches(name) == true, "a server name is a lowercase host name")
        }
    }
    checkPrefixes(bytes, whole)
}

/// The reader's answers grow with its input: a prefix found invalid stays invalid, and a prefix found done
/// (the hello is whole) is the same hello with more bytes after it.
private func checkPrefixes(_ bytes: UnsafeRawBufferPointer, _ whole: ParseOutcome<ClientHello>) {
    for eighth in 1...8 {
        let length = eighth == 8 ? bytes.count - 1 : bytes.count * eighth / 8
        guard length >= 0 else { continue }
        switch ClientHelloReader.parse(ByteView(UnsafeRawBufferPointer(rebasing: bytes[..<length]))) {
        case .needMore:
            break
        case .invalid:
            guard case .invalid = whole else { preconditionFailure("a prefix of \(length) bytes is invalid, the whole is \(whole)") }
        case let prefix:
            precondition(prefix == whole, "a prefix of \(length) bytes is \(prefix), the whole is \(whole)")
        }
    }
}

/// The bytes as the fragments of handshake records of at most `size` bytes.
private func records(_ stream: UnsafeRawBufferPointer, size: Int) -> [UInt8] {
    var framed: [UInt8] = []
    var start = 0
    while start < stream.count {
        let end = min(start + size, stream.count)
        framed += [22, 3, 1, UInt8((end - start) >> 8), UInt8((end - start) & 0xFF)]
        framed += stream[start..<end]
        start = end
    }
    return framed
}
