import Glibc
import Logging

/// Runs a started proxy until signals end it: SIGHUP reloads the configuration, SIGTERM or SIGINT drains
/// (stop accepting, let connections finish for up to the drain timeout, exit 0), and a second one of those
/// closes everything at once. It also writes the periodic report.
///
/// This is the small equivalent of swift-service-lifecycle this process needs: the data plane runs on
/// pinned pthreads, not tasks, and ServiceGroup requires its graceful and cancellation signals to be
/// different, so "a second SIGTERM exits at once" would need this loop anyway.
public struct Lifecycle {
    public typealias ConfigSource = () throws(ConfigError) -> ProxyConfig

    private let proxy: Proxy
    private let logger: Logger
    private let reloadSource: ConfigSource?
    private let onDrain: () -> Void
    private static let stopSignals = [SIGINT, SIGTERM, SIGHUP]

    /// `reloadSource` reads the configuration again (nil: SIGHUP only logs that there is no file);
    /// `onDrain` runs when draining starts (the admin endpoint turns `/healthz` to 503).
    public init(proxy: Proxy, logger: Logger, reloadSource: ConfigSource?, onDrain: @escaping () -> Void = {}) {
        self.proxy = proxy
        self.logger = logger
        self.reloadSource = reloadSource
        self.onDrain = onDrain
    }

    /// Blocks the signals this loop waits for. Call it before any thread starts, so every thread inherits
    /// the mask and only `run` ever receives them.
    public static func blockSignals() {
        var signals = signalSet()
        pthread_sigmask(SIG_BLOCK, &signals, nil)
    }

    /// Waits for signals until the proxy has stopped; returns the exit status.
    public func run() -> Int32 {
        var signals = Self.signalSet()
        var report = Reporter(proxy: proxy)
        var drainDeadline: Int64?
        var nextReport = proxy.config.reportInterval.map { monotonicMilliseconds() + $0.milliseconds }
        while true {
            var wait = timespec(tv_sec: 0, tv_nsec: 100_000_000)
            let received = sigtimedwait(&signals, nil, &wait)
            let now = monotonicMilliseconds()
            if let due = nextReport, now >= due, let interval = proxy.config.reportInterval {
                report.log(to: logger)
                nextReport = due + interval.milliseconds
            }
            switch received {
            case SIGHUP:
                if drainDeadline == nil { reload() } else { logger.warning("SIGHUP ignored: the proxy is draining") }
            case SIGTERM, SIGINT:
                let name = received == SIGINT ? "SIGINT" : "SIGTERM"
                if drainDeadline != nil {
                    logger.warning("\(name) again: closing every connection now", metadata: ["open": "\(proxy.counters.total(.active))"])
                    proxy.stop()
                    return 0
                }
                let timeout = proxy.config.drainTimeout
                logger.info("draining: accepting no new connections; open ones may finish", metadata: [
                    "signal": "\(name)", "open": "\(proxy.counters.total(.active))", "drain_timeout": "\(timeout)",
                ])
                onDrain()
                proxy.drain()
                drainDeadline = now + timeout.milliseconds
            default:
                break
            }
            if let deadline = drainDeadline {
                if proxy.runningWorkers == 0 {
                    proxy.stop()
                    logger.info("stopped: every connection finished")
                    return 0
                }
                if now >= deadline {
                    logger.warning("drain timeout: closing the connections still open", metadata: ["open": "\(proxy.counters.total(.active))"])
                    proxy.stop()
                    return 0
                }
            }
        }
    }

    private func reload() {
        guard let reloadSource else {
            logger.warning("SIGHUP: there is no configuration file to reload (started with flags only)")
            return
        }
        let config: ProxyConfig
        do {
            config = try reloadSource()
        } catch {
            proxy.recordReloadFailure()
            logger.error("reload failed: the configuration has errors; the running one stays", metadata: ["errors": "\(error.issues.count)"])
            for line in error.description.split(separator: "\n") { logger.error("\(line)") }
            return
        }
        do {
            let outcome = try proxy.reload(to: config)
            var metadata: Logger.Metadata = [
                "generation": "\(outcome.generation)", "listeners": "\(config.listeners.count)",
                "backends": "\(config.listeners.reduce(0) { $0 + $1.backends.count })",
            ]
            if !outcome.applied.isEmpty {
                metadata["changed"] = "\(outcome.applied.map { "\($0.name) \($0.running) -> \($0.requested)" }.joined(separator: ", "))"
            }
            logger.info("configuration reloaded", metadata: metadata)
            for setting in outcome.restartOnly {
                logger.warning("\(setting.name) changed: only a restart applies it", metadata: [
                    "running": "\(setting.running)", "requested": "\(setting.requested)",
                ])
            }
        } catch {
            logger.error("reload failed; the running configuration stays", metadata: ["error": "\(error)"])
        }
    }

    private static func signalSet() -> sigset_t {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in stopSignals { sigaddset(&signals, signal) }
        return signals
    }
}
