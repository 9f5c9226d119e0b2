import Dispatch
import Foundation
import Synchronization

extension Server {
    /// One scrape: every worker copies its counters on its own loop (a second at most for all
    /// of them), summed with what the server knows.
    func collectMetrics() -> MetricsSnapshot {
        let snapshot = currentState()
        let copies = Mutex<[WorkerMetrics]>([])
        let done = DispatchSemaphore(value: 0)
        for w in workers {
            let box = WorkerBox(w)
            w.loop.execute {
                let m = box.worker.metricsSnapshot()
                copies.withLock { $0.append(m) }
                done.signal()
            }
        }
        var answered = 0
        let deadline = DispatchTime.now() + .seconds(1)
        while answered < workers.count && done.wait(timeout: deadline) == .success { answered += 1 }
        var s = MetricsSnapshot()
        for m in copies.withLock({ $0 }) { s.workers.add(m) }
        s.missingWorkers = workers.count - answered
        s.keys = snapshot.ring.keys.map { ($0.kid, $0.state.rawValue, $0.createdAt) }
        s.revocations = revocations.count
        s.reloadsOK = reloadsOK.load(ordering: .relaxed)
        s.reloadsFailed = reloadsFailed.load(ordering: .relaxed)
        s.startedAt = startedAt
        s.now = Int64(Date().timeIntervalSince1970)
        return s
    }

    /// A takeover's new process: the metrics address is the old process's until it exits, so
    /// binding is tried again every 200 ms (for the drain's length and a little more).
    func startMetricsAfterHandover() {
        let config = currentState().config
        guard config.metrics.enable, let address = try? SocketAddress.resolve(config.metrics.listen) else { return }
        let attempts = (config.server.shutdownTimeoutMs + 10_000) / 200
        let log = self.log
        Thread.detachNewThread { [self] in
            for _ in 0..<attempts {
                let m = MetricsServer { [self] in collectMetrics() }
                // Its serving thread holds it from here on.
                if (try? m.start(address: address)) != nil { return }
                usleep(200_000)
            }
            log.submit("warning: metrics: \(config.metrics.listen) stayed taken after the takeover; no metrics are served")
        }
    }
}
