import Glibc
import Synchronization

/// Access and event log lines, written by one background thread so that a slow terminal or pipe
/// never blocks an event loop. Workers hand over whole batches; when the writer falls behind by
/// more than `maxPending` bytes, new lines are dropped and counted rather than held.
/// Lines never contain a token, password or secret: callers pass only method, path, status,
/// sizes, durations, user and request id.
final class LogWriter: @unchecked Sendable {
    private let pending = Mutex<[UInt8]>([])
    private let dropped = Atomic<Int>(0)
    private let maxPending = 4 << 20
    /// Where lines go: standard output, or `log.file` (reopened on SIGUSR1, for logrotate).
    private let output: Mutex<(fd: Int32, path: String)>
    private let jsonFormat = Atomic<Bool>(false)
    private var thread: pthread_t?

    init(fd: Int32 = 1) {
        output = Mutex((fd, ""))
        var t = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&t, nil, { raw in
            let me = Unmanaged<LogWriter>.fromOpaque(raw!).takeRetainedValue()
            me.runWriter()
            return nil
        }, box)
        thread = t
    }

    /// Hands over bytes (complete lines) from any thread.
    func submit(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        let accepted = pending.withLock { p -> Bool in
            guard p.count + bytes.count <= maxPending else { return false }
            p.append(contentsOf: bytes)
            return true
        }
        if !accepted { dropped.add(1, ordering: .relaxed) }
    }

    /// An event line, in the configured format (`LogLine.event`).
    func submit(_ line: String) {
        LogLine.event(line, format: format).withUnsafeBytes { submit($0) }
    }

    var format: LogFormat { jsonFormat.load(ordering: .relaxed) ? .json : .text }

    /// Applies `log.format` and `log.file` ("" for standard output); a file is opened for
    /// appending (created mode 0640). Throws when it cannot be opened: the lines keep going
    /// where they went.
    func configure(format: LogFormat, file: String) throws {
        jsonFormat.store(format == .json, ordering: .relaxed)
        guard file != output.withLock({ $0.path }) else { return }
        try switchTo(file)
    }

    /// Opens the file again (SIGUSR1: logrotate moved it away); standard output stays.
    func reopen() throws {
        let path = output.withLock { $0.path }
        guard !path.isEmpty else { return }
        try switchTo(path)
    }

    private func switchTo(_ path: String) throws {
        let fd: Int32
        if path.isEmpty {
            fd = 1
        } else {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw StartupError("log.file \(path): \(String(cString: strerror(errno)))") }
        }
        let old = output.withLock { o -> Int32 in
            defer { o = (fd, path) }
            return o.fd
        }
        if old > 2 { Glibc.close(old) }
    }

    /// Writes what is pending now (used at exit).
    func flush() {
        let batch = pending.withLock { p -> [UInt8] in defer { p.removeAll(keepingCapacity: true) }; return p }
        write(batch)
    }

    private func runWriter() {
        while true {
            let batch = pending.withLock { p -> [UInt8] in defer { p.removeAll(keepingCapacity: true) }; return p }
            if batch.isEmpty {
                usleep(20_000)
                continue
            }
            write(batch)
            let lost = dropped.exchange(0, ordering: .relaxed)
            if lost > 0 {
                write(Array("log: \(lost) batches dropped (writer behind)\n".utf8))
            }
        }
    }

    private func write(_ bytes: [UInt8]) {
        // Under the lock, so a reopen never closes the descriptor mid-write.
        output.withLock { o in _ = try? Syscall.writeAll(o.fd, bytes) }  // output gone: nothing left to tell
    }
}
