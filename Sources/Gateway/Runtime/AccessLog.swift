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
    private let fd: Int32
    private let signal = Mutex<Bool>(false)
    private var thread: pthread_t?

    init(fd: Int32 = 1) {
        self.fd = fd
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

    func submit(_ line: String) {
        var l = line
        if !l.hasSuffix("\n") { l += "\n" }
        l.withUTF8 { submit(UnsafeRawBufferPointer($0)) }
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
        try? Syscall.writeAll(fd, bytes)  // standard output gone: nothing left to tell
    }
}
