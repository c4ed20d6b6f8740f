import ArgumentParser
import Glibc
import RingIO
import RingSystem

struct EchoServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "Echo every byte back to its sender, until SIGINT or SIGTERM."
    )

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.serve(.echo)
    }
}

struct SinkServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sink-server",
        abstract: "Read and discard every byte, until SIGINT or SIGTERM."
    )

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.serve(.sink)
    }
}

struct ServerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Address to listen on (repeatable).", valueName: "host:port"))
    var listen: [String]

    @Option(help: "Threads, each with its own ring and SO_REUSEPORT socket.")
    var threads = 1

    func validate() throws {
        guard !listen.isEmpty else { throw ValidationError("give at least one --listen host:port") }
        for text in listen where SocketAddress(numeric: text) == nil { throw ValidationError("bad address '\(text)'") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    /// Listens on every address from every thread, prints "<mode>-server listening on ..." and serves
    /// until SIGINT or SIGTERM.
    func serve(_ mode: BackendServer.Mode) throws {
        var bound: [SocketAddress] = []
        var sockets = Array(repeating: [Int32](), count: threads)
        for var address in listen.map({ SocketAddress(numeric: $0)! }) {
            for thread in 0..<threads {
                let fd = try Socket.listen(on: address, backlog: 65535)
                // Port 0: the other threads bind the port the first one got.
                if thread == 0, let local = Socket.localAddress(of: fd) { address = local }
                sockets[thread].append(fd)
            }
            bound.append(address)
        }
        print("\(mode)-server listening on \(bound.map(\.description).joined(separator: ", "))")
        flushOutput()
        blockStopSignals()
        for listeners in sockets {
            _ = startThread {
                do {
                    var server = try BackendServer(mode, listeners: listeners)
                    server.run()
                } catch {
                    printError("\(mode)-server: \(error)")
                    Glibc.exit(1)
                }
            }
        }
        waitForStopSignal()
    }
}
