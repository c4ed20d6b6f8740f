// The floors below this one (ARCHITECTURE.md). Re-exported so that every file here, the CLI, and users of
// the `RingProxy` library product see the ring and system types (`SocketAddress`, `IORing`, `UserData`)
// as they did before these were their own modules.
@_exported import RingIO
@_exported import RingSystem
