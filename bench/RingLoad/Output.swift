import Glibc

/// Writes one line to stderr with a single write (threads never interleave within a line).
func printError(_ message: String) {
    var bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
}

/// Flushes buffered stdout, so a line reaches a pipe before the process blocks.
func flushOutput() {
    fflush(nil)
}
