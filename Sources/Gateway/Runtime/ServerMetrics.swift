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
}
