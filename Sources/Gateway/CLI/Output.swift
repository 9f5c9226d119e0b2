import Glibc

/// Writes to standard error (diagnostics; standard output carries only results).
func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    writeAll(2, line)
}

/// Writes all of `text` to `fd` (command-line output only).
func writeAll(_ fd: Int32, _ text: String) {
    try? Syscall.writeAll(fd, Array(text.utf8))
}

/// Current Unix time in seconds.
func unixNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec)
}

/// Monotonic nanoseconds (benchmarks and deadlines).
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
