/// What an incremental parser says about the bytes it has been given so far.
///
/// The routing parsers (`ClientHelloReader`, `ProxyHeaderReader`) are pure functions over the whole prefix of
/// a connection's bytes received so far: the caller appends what each recv brings and parses again from the
/// first byte. They keep no state between calls, read nothing past the buffer they are given, and allocate
/// only to build their result.
public enum ParseOutcome<Value: Sendable>: Sendable {
    /// The bytes so far are a valid beginning: give more (or give up at the caller's size or time limit).
    case needMore
    /// The value, and how many leading bytes it took: the bytes to strip before forwarding (0 when the bytes
    /// are forwarded unchanged, as a ClientHello is).
    case done(Value, consumed: Int)
    /// The bytes cannot become what was expected. The reason is a short fixed phrase, never built from the
    /// input, so that it can be a log field or a counter's label as it is.
    case invalid(String)
}

extension ParseOutcome: Equatable where Value: Equatable {}

/// Thrown inside a parser when the input is malformed; the public entry points turn it into `.invalid`.
/// Typed throws keep it unboxed: no allocation on the failure path either (the reasons are literals).
struct MalformedInput: Error {
    let reason: String

    init(_ reason: String) {
        self.reason = reason
    }
}
