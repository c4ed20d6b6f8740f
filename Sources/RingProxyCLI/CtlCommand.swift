import ArgumentParser
import Foundation
import Glibc
import RingProxy

/// `ringproxy ctl`: runtime control of a running proxy through its admin endpoint (`PUT /backends/...`),
/// as `haproxyctl` or `socat` on HAProxy's runtime socket.
struct CtlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringproxy ctl",
        abstract: "Show or change backends of a running ringproxy through its admin endpoint.",
        discussion: """
              ringproxy ctl backends
              ringproxy ctl drain web 10.0.1.1:8080    (no new connections)
              ringproxy ctl maint web 10.0.1.1:8080    (and no health checks)
              ringproxy ctl ready web 10.0.1.1:8080
              ringproxy ctl weight web 10.0.1.1:8080 5
              ringproxy ctl reset web 10.0.1.1:8080    (drop the overrides)
            """,
        subcommands: [Backends.self, Ready.self, Drain.self, Maint.self, Weight.self, Reset.self])
}

/// Where the admin endpoint is, and its token.
struct AdminOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The admin endpoint, host:port or a port.", valueName: "address"))
    var admin = "127.0.0.1:9901"

    @Option(help: ArgumentHelp("A file holding the admin bearer token (needed when the proxy has admin_token_file).", valueName: "file"))
    var tokenFile: String?

    func client() throws -> AdminClient {
        var token: String?
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ValidationError("--token-file: cannot read '\(tokenFile)'")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        do { return try AdminClient(admin: admin, token: token) } catch { throw ValidationError(error.description) }
    }
}

extension CtlCommand {
    struct Backends: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every backend: state, weights, load, origin.")
        @OptionGroup var options: AdminOptions

        func run() throws {
            let response = try CtlCommand.send(options, "GET", "/backends")
            guard let document = try? JSONDecoder.snakeCase.decode(BackendsDocument.self, from: Data(response.body.utf8)) else {
                CtlCommand.fail("the admin endpoint's /backends is not what this ringproxy expects:\n\(response.body.prefix(200))")
            }
            print(document.table(), terminator: "")
        }
    }

    struct Ready: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a backend take new connections again.")
        @OptionGroup var options: AdminOptions
        @OptionGroup var backend: BackendArguments
        func run() throws { try CtlCommand.change(options, backend, "state=ready") }
    }

    struct Drain: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "No new connections to a backend; open ones finish.")
        @OptionGroup var options: AdminOptions
        @OptionGroup var backend: BackendArguments
        func run() throws { try CtlCommand.change(options, backend, "state=drain") }
    }

    struct Maint: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Maintenance: no new connections, health checks paused.")
        @OptionGroup var options: AdminOptions
        @OptionGroup var backend: BackendArguments
        func run() throws { try CtlCommand.change(options, backend, "state=maint") }
    }

    struct Weight: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a backend's weight at runtime (its file weight stays).")
        @OptionGroup var options: AdminOptions
        @OptionGroup var backend: BackendArguments
        @Argument(help: "The new weight (0 takes no new connections).") var weight: Int
        func run() throws { try CtlCommand.change(options, backend, "weight=\(weight)") }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop a backend's runtime overrides: ready, at its file weight.")
        @OptionGroup var options: AdminOptions
        @OptionGroup var backend: BackendArguments
        func run() throws {
            let response = try CtlCommand.send(options, "DELETE", backend.path)
            try CtlCommand.report(response)
        }
    }

    static func change(_ options: AdminOptions, _ backend: BackendArguments, _ body: String) throws {
        try report(send(options, "PUT", backend.path, body: body))
    }

    static func send(_ options: AdminOptions, _ method: String, _ path: String, body: String = "") throws -> AdminClient.Response {
        let response: AdminClient.Response
        do { response = try options.client().request(method, path, body: body) } catch let error as AdminClient.Failure {
            fail(error.description)
        }
        guard response.status == 200 else {
            fail("the admin endpoint answered \(response.status): \(response.body.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return response
    }

    /// One line for the backend a change answered with.
    static func report(_ response: AdminClient.Response) throws {
        guard let backend = try? JSONDecoder.snakeCase.decode(BackendsDocument.Backend.self, from: Data(response.body.utf8)) else {
            fail("unexpected answer: \(response.body.prefix(200))")
        }
        print("\(backend.address): \(backend.state), weight \(backend.weight) (file \(backend.fileWeight)), \(backend.active) active")
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("ringproxy ctl: \(message)\n".utf8))
        Glibc.exit(1)
    }
}

/// `<pool> <address>`: the listener's name and the backend's host:port, as `ctl backends` shows them.
struct BackendArguments: ParsableArguments {
    @Argument(help: "The pool: the listener's name (\"default\" for the flat layout).") var pool: String
    @Argument(help: "The backend's address, host:port as `ctl backends` shows it.") var address: String

    var path: String {
        let allowed = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))
        return "/backends/\(pool.addingPercentEncoding(withAllowedCharacters: allowed) ?? pool)/\(address.addingPercentEncoding(withAllowedCharacters: allowed) ?? address)"
    }
}

extension BackendsDocument {
    /// One row per backend, columns aligned.
    func table() -> String {
        var rows = [["POOL", "ADDRESS", "STATE", "WEIGHT", "FILE", "EFFECTIVE", "OVERRIDE", "ACTIVE", "TOTAL", "ORIGIN"]]
        for listener in listeners {
            for backend in listener.backends {
                let override = [backend.override?.state.map { "state=\($0)" }, backend.override?.weight.map { "weight=\($0)" }]
                    .compactMap { $0 }.joined(separator: ",")
                rows.append([listener.name, backend.address, backend.state, "\(backend.weight)", "\(backend.fileWeight)",
                             String(format: "%.2f", backend.effectiveWeight), override.isEmpty ? "-" : override,
                             "\(backend.active)", "\(backend.total)", backend.origin])
            }
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
