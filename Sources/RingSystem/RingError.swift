import Glibc

/// A failed ring system call, with the errno it returned.
public struct RingError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32

    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
