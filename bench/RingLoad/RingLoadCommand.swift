import ArgumentParser

/// `ringload`: the load generator and test backends bundled with RingProxy, driven by io_uring.
@main
struct RingLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringload",
        abstract: "Load generator and test backends for RingProxy, driven by io_uring.",
        subcommands: [
            EchoServerCommand.self, SinkServerCommand.self, RequestResponseCommand.self, StreamCommand.self,
            ConnectRateCommand.self, IdleCommand.self,
        ]
    )

    static func main() {
        raiseOpenFileLimit()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
