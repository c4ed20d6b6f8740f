import Logging

/// Logs at most one line per interval for one kind of event, saying how many were left out since. Keeps a
/// dead backend or a file-descriptor storm from flooding the log from the data plane.
struct RateLimitedLog {
    private let intervalTicks: UInt32
    private var lastTick: UInt32?
    private var suppressed = 0

    init(intervalTicks: UInt32) { self.intervalTicks = intervalTicks }

    mutating func log(
        _ logger: Logger, _ level: Logger.Level, now: UInt32,
        _ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]
    ) {
        if let last = lastTick, now &- last < intervalTicks {
            suppressed += 1
            return
        }
        var details = metadata()
        if suppressed > 0 { details["suppressed"] = "\(suppressed)" }
        logger.log(level: level, message(), metadata: details)
        lastTick = now
        suppressed = 0
    }
}
