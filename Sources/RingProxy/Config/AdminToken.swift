import Foundation
import Glibc

/// The bearer token of the admin endpoint, read from a file (`admin_token_file`) so that it stays out of the
/// configuration, the command line and the logs. Its description never shows the token.
public struct AdminToken: Sendable, Equatable, CustomStringConvertible {
    /// The file it was read from, as given.
    public let file: String
    let bytes: [UInt8]

    /// Shortest token accepted: 16 bytes (a 128-bit random value written as hex is 32).
    static let minimumLength = 16

    /// Reads the token: the file's content less surrounding whitespace (a trailing newline, say).
    public init(file: String) throws(AdminTokenError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            let reason = access(file, R_OK) == 0 ? "not a regular file" : String(cString: strerror(errno))
            throw .unreadable(file: file, reason: reason)
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.utf8.count >= Self.minimumLength else { throw .tooShort(file: file, length: token.utf8.count) }
        guard token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else { throw .notPrintable(file: file) }
        self.file = file
        bytes = Array(token.utf8)
    }

    /// Whether `header` (an `Authorization` value) is `Bearer <this token>`. The comparison takes the same time
    /// wherever the first difference is, so timing does not reveal how much of a guess was right.
    func accepts(authorization header: String?) -> Bool {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let offered = Array(header.utf8.dropFirst(7))
        var difference: UInt8 = offered.count == bytes.count ? 0 : 1
        for index in 0..<bytes.count {
            difference |= bytes[index] ^ (index < offered.count ? offered[index] : 0)
        }
        return difference == 0
    }

    public var description: String { "token from \(file)" }
}

public enum AdminTokenError: Error, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case tooShort(file: String, length: Int)
    case notPrintable(file: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): "cannot read the admin token file '\(file)': \(reason)"
        case .tooShort(let file, let length):
            "the admin token in '\(file)' is \(length) characters; use at least \(AdminToken.minimumLength) (like: openssl rand -hex 32 > \(file))"
        case .notPrintable(let file): "the admin token in '\(file)' must be printable ASCII without spaces (like: openssl rand -hex 32 > \(file))"
        }
    }
}
