import ArgumentParser

/// `ringload`: the load generator and test backends bundled with RingProxy, driven by io_uring.
@main
struct RingLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringload",
        abstract: "Load generator and echo backend for RingProxy, driven by io_uring.",
        subcommands: [EchoServerCommand.self, RequestResponseCommand.self]
    )
}
