import Foundation
import Glibc

/// `GET /metrics` on `metrics.listen`, a listener of its own (never the public one), served one
/// connection at a time by a thread of its own with blocking sockets and short timeouts: a
/// scrape never runs on an event loop, and the loops pay only for the copy job each one runs.
final class MetricsServer: @unchecked Sendable {
    private let collect: @Sendable () -> MetricsSnapshot
    private var listener: Socket?

    init(collect: @escaping @Sendable () -> MetricsSnapshot) {
        self.collect = collect
    }

    /// Binds `address` (alone: no SO_REUSEPORT, so it can never share a port with anything)
    /// and serves it from a thread of its own.
    func start(address: SocketAddress) throws {
        let l = try Socket.listen(address, blocking: true, reusePort: false)
        listener = l
        Thread.detachNewThread { [self] in
            while true {
                guard let client = try? l.acceptBlocking() else {
                    usleep(100_000)   // out of descriptors or the like: no busy loop
                    continue
                }
                serve(client)
                client.close()
            }
        }
    }

    /// The whole request must come within two seconds: a client that trickles bytes cannot hold
    /// the one serving thread longer than that.
    private func serve(_ client: Socket) {
        client.setTimeouts(seconds: 2)
        let deadline = monotonicNanos() + 2_000_000_000
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while !head.containsHeadEnd && head.count < 8192 {
            let now = monotonicNanos()
            guard now < deadline, client.waitReadable(timeoutMs: Int32((deadline - now) / 1_000_000) + 1),
                  let n = client.readSome(into: &chunk), n > 0 else { return }
            head += chunk[0..<n]
        }
        let line = head.prefix { $0 != 0x0D && $0 != 0x0A }
        let parts = line.split(separator: 0x20)
        let answer: (status: String, type: String, body: String)
        if parts.count == 3, Array(parts[0]) == Array("GET".utf8),
           Array(parts[1].prefix { $0 != UInt8(ascii: "?") }) == Array("/metrics".utf8) {
            let snapshot = collect()
            // A partial sum would look like counters going back (a reset) to Prometheus.
            answer = snapshot.missingWorkers == 0
                ? ("200 OK", MetricsExposition.contentType, MetricsExposition.render(snapshot))
                : ("503 Service Unavailable", "text/plain; charset=utf-8", "\(snapshot.missingWorkers) worker(s) did not answer in time\n")
        } else {
            answer = ("404 Not Found", "text/plain; charset=utf-8", "only GET /metrics is served here\n")
        }
        let body = Array(answer.body.utf8)
        let response = Array("HTTP/1.1 \(answer.status)\r\nContent-Type: \(answer.type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        _ = client.sendAll(response + body)
    }
}

private extension Array where Element == UInt8 {
    var containsHeadEnd: Bool {
        guard count >= 4 else { return false }
        for i in 0...(count - 4) where self[i] == 0x0D && self[i + 1] == 0x0A && self[i + 2] == 0x0D && self[i + 3] == 0x0A { return true }
        return false
    }
}
