import RingProxy

// libFuzzer target for the config loader: every input is the text of a config file, taken through what
// `ringproxy --config FILE` does with it (ConfigFile.parse, the flags' override, ProxyConfig.validate) and
// the error's rendering. The loader may answer with a config or a ConfigError, nothing else: a trap, an
// out-of-bounds access (ASan) or a hang (libFuzzer's -timeout) is a bug. Built and run by `make fuzz`.

/// CPUs the validation is told are available, fixed so that a run does not depend on the machine.
private let allowedCPUs = [0, 1, 2, 3]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigLoader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    load(text)
    return 0
}

private func load(_ text: String) {
    // Typed throws: the compiler holds every failure to ConfigError.
    do {
        let settings = try ConfigFile.parse(text, file: "fuzz.toml")
        let merged = settings.overridden(by: ProxySettings())
        let config = try ProxyConfig.validate(merged, file: "fuzz.toml", allowedCPUs: allowedCPUs)
        precondition(!config.listeners.isEmpty, "a valid config has a listener")
        _ = String(describing: config)
    } catch {
        precondition(!error.issues.isEmpty, "a ConfigError lists at least one issue")
        _ = error.description
    }
}
