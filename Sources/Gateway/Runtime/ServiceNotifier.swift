import Glibc
import Synchronization

/// The sd_notify protocol, spoken directly (no libsystemd): each message is one datagram to the
/// unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
/// `@`). Without the variable it says nothing, so the same binary runs anywhere.
struct ServiceNotifier: Sendable {
    /// The socket's address bytes (`sun_path` as sent); nil when not run by a service manager.
    private let address: [UInt8]?
    /// Half of `$WATCHDOG_USEC` in milliseconds (how often to say WATCHDOG=1), when set for
    /// this process.
    let watchdogIntervalMs: Int?

    init(environment: [String: String]) {
        if let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count < 108,
           path.hasPrefix("/") || path.hasPrefix("@") {
            var bytes = Array(path.utf8)
            if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
            address = bytes
        } else {
            address = nil
        }
        // WATCHDOG_PID, when set, must be this process (the variable may be inherited).
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec >= 2_000 {
            watchdogIntervalMs = Int(usec / 2_000)
        } else {
            watchdogIntervalMs = nil
        }
    }

    var isActive: Bool { address != nil }

    /// Sends `message` ("READY=1", several assignments separated by newlines); false when it
    /// could not be sent (or there is no service manager).
    @discardableResult
    func send(_ message: String) -> Bool {
        guard let address else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: address) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count + (address[0] == 0 ? 0 : 1))
        let text = Array(message.utf8)
        let sent = withUnsafePointer(to: &sa) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, text, text.count, Int32(MSG_NOSIGNAL), $0, length) }
        }
        return sent == text.count
    }

    /// `RELOADING=1` with the monotonic time systemd asks of a reload notification.
    static func reloadingMessage() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return "RELOADING=1\nMONOTONIC_USEC=\(UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000)"
    }
}

/// Says WATCHDOG=1 only while every worker's loop still runs: each tick posts a small job to
/// every loop, and the next tick pets the watchdog only if all of them ran. A loop stuck in a
/// handler stops the petting, and systemd restarts the service.
final class LoopWatchdog: Sendable {
    private let answered: Mutex<[Bool]>

    init(loops: Int) { answered = Mutex(Array(repeating: true, count: loops)) }

    func tick(_ workers: [Worker], notifier: ServiceNotifier) {
        let alive = answered.withLock { a -> Bool in
            let all = a.allSatisfy { $0 }
            for i in a.indices { a[i] = false }
            return all
        }
        if alive { notifier.send("WATCHDOG=1") }
        for (i, w) in workers.enumerated() {
            w.loop.execute { [self] in answered.withLock { $0[i] = true } }
        }
    }
}
