import Foundation
import Glibc
import Logging
@testable import RingProxy
import XCTest

/// A RingProxy in this process from an inline TOML config (listeners on port 0), for the routing tests.
final class RoutedProxy {
    let proxy: Proxy

    /// `log` receives the proxy's info lines (the access log) when given.
    init(_ toml: String, threads: Int = 2, log: CapturedLog? = nil) throws {
        raiseOpenFileLimit()
        proxy = Proxy(config: try Self.config(toml, threads: threads), logger: log?.logger ?? Self.quietLogger)
        try proxy.start()
    }

    static func config(_ toml: String, threads: Int) throws -> ProxyConfig {
        var settings = try ConfigFile.parse(toml, file: "routing-test.toml")
        settings.threads = Setting(threads, SettingSource(key: "test"))
        settings.pin = Setting(false, SettingSource(key: "test"))
        return try ProxyConfig.validate(settings)
    }

    private static var quietLogger: Logger {
        var logger = Logger(label: "ringproxy-routing-test")
        logger.logLevel = .error
        return logger
    }

    /// The address of the listener named `name` (the first one by default).
    func address(_ name: String? = nil) -> SocketAddress {
        let listeners = proxy.plan.listeners
        return (name.flatMap { name in listeners.first { $0.name == name } } ?? listeners[0]).address
    }

    func total(_ name: WorkerCounters.Name) -> Int { proxy.counters.total(name) }

    /// Reloads with `toml`, keeping the thread count; listeners keep their ports when their name stays and
    /// their bind is port 0.
    func reload(_ toml: String) throws {
        try proxy.reload(to: Self.config(toml, threads: proxy.config.threads))
    }

    func stop() { proxy.stop() }
}

/// TLS ClientHellos built byte by byte (RFC 8446 §4.1.2), so a test controls the server name, the ALPN
/// list and the size (a padding extension, RFC 7685), as a post-quantum key share makes hellos of 2–8 KiB.
enum ClientHelloBytes {
    static func make(serverName: String?, alpn: [String] = [], size: Int? = nil, recordSize: Int = 16384) -> [UInt8] {
        var extensions: [UInt8] = []
        func add(_ type: UInt16, _ body: [UInt8]) {
            extensions += be16(type) + be16(UInt16(body.count)) + body
        }
        if let serverName {
            let name = Array(serverName.utf8)
            let entry = [UInt8(0)] + be16(UInt16(name.count)) + name
            add(0x0000, be16(UInt16(entry.count)) + entry)
        }
        if !alpn.isEmpty {
            let list = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            add(0x0010, be16(UInt16(list.count)) + list)
        }
        add(0x002B, [0x02, 0x03, 0x04])  // supported_versions: TLS 1.3
        var body: [UInt8] = [0x03, 0x03] + (0..<32).map { UInt8($0) } + [0x00]  // legacy version, random, no session id
        body += be16(2) + [0x13, 0x01]  // TLS_AES_128_GCM_SHA256
        body += [0x01, 0x00]  // null compression
        if let size {
            // Handshake header 4, record header 5, extensions length 2, padding extension header 4.
            let padding = max(0, size - (5 + 4 + body.count + 2 + extensions.count + 4))
            add(0x0015, [UInt8](repeating: 0, count: padding))
        }
        body += be16(UInt16(extensions.count)) + extensions
        let handshake = [UInt8(0x01), UInt8(body.count >> 16), UInt8((body.count >> 8) & 0xFF), UInt8(body.count & 0xFF)] + body
        // Split over as many records as `recordSize` asks for.
        var records: [UInt8] = []
        var offset = 0
        while offset < handshake.count {
            let chunk = handshake[offset..<min(handshake.count, offset + recordSize)]
            records += [0x16, 0x03, 0x01] + be16(UInt16(chunk.count)) + chunk
            offset += chunk.count
        }
        return records
    }

    private static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
}

/// A TLS server from Debian's openssl (`s_server -WWW`), with a certificate made for it, serving the file
/// `who` (its name) from a folder of its own: `curl https://name/who` tells which backend answered.
final class TLSServer {
    let name: String
    let port: UInt16
    let folder: String
    private let process: BuiltBinary.Running

    init(name: String) throws {
        let openssl = try requireTool(["/usr/bin/openssl"], install: "apt-get install openssl")
        self.name = name
        folder = NSTemporaryDirectory() + "ringproxy-tls-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try "\(name)\n".write(toFile: "\(folder)/who", atomically: true, encoding: .utf8)
        try makeCertificate(for: name, key: "\(folder)/key.pem", certificate: "\(folder)/cert.pem")
        port = try deadAddress().port
        // s_server -WWW serves files relative to its working directory: a shell sets it.
        process = try BuiltBinary.Running(executable: "/bin/sh", arguments: [
            "/bin/sh", "-c",
            "cd '\(folder)' && exec \(openssl) s_server -quiet -accept 127.0.0.1:\(port) -cert cert.pem -key key.pem -WWW",
        ])
        let address = SocketAddress(numericHost: "127.0.0.1", port: port)!
        guard eventually(10, { (try? TestClient(address)) != nil }) else { throw TestFailure("s_server \(name) did not start") }
    }

    var address: SocketAddress { SocketAddress(numericHost: "127.0.0.1", port: port)! }

    deinit {
        process.signal(SIGTERM)
        _ = process.finish()
        try? FileManager.default.removeItem(atPath: folder)
    }
}

/// A self-signed certificate for `name` (its CN and only subjectAltName) and its key, as PEM files, valid a day.
func makeCertificate(for name: String, key: String, certificate: String) throws {
    let openssl = try requireTool(["/usr/bin/openssl"], install: "apt-get install openssl")
    let made = try BuiltBinary.Running(executable: openssl, arguments: [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)",
    ]).finish()
    guard made.status == 0 else { throw TestFailure("openssl req: \(made.stderr)") }
}

/// `curl -k --resolve name:port:host https://name:port/who`: the answering backend's name, or nil. With
/// `trusting`, curl verifies the server's certificate against that file (`--cacert`) instead of `-k`.
func curlWho(_ serverName: String, via proxy: SocketAddress, trusting certificate: String? = nil) throws -> String? {
    let curl = try requireTool(["/usr/bin/curl"], install: "apt-get install curl")
    let verification = certificate.map { ["--cacert", $0] } ?? ["-k"]
    let outcome = try BuiltBinary.Running(executable: curl, arguments: [curl, "-s"] + verification + [
        "--max-time", "10", "--resolve", "\(serverName):\(proxy.port):\(proxy.host)", "https://\(serverName):\(proxy.port)/who",
    ]).finish()
    guard outcome.status == 0 else { return nil }
    return outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A TOML backends array for addresses.
func backendList(_ addresses: [SocketAddress]) -> String {
    "[" + addresses.map { "{ host = \"\($0.host)\", port = \($0.port) }" }.joined(separator: ", ") + "]"
}

/// The hash of `bytes` as `TestServer(.replyOnEOF)` reports it.
func replyLine(for bytes: [UInt8]) -> String {
    var hash = StreamHash()
    bytes.withUnsafeBytes { hash.add($0) }
    return hash.digest
}

/// Keeps the lines logged at info and above, each as its message and metadata (`key=value`, sorted).
final class CapturedLog: @unchecked Sendable {
    private let lines = Locked<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "ringproxy-routing-test") { _ in Handler(log: self) }
        logger.logLevel = .info
        return logger
    }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
                 function: String, line: UInt) {
            let fields = (metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            log.append("\(message) \(fields)")
        }
    }
}
