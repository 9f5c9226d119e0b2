import Glibc
import Synchronization

/// A few threads for work that must never run on an event loop: password hashing (tens of
/// milliseconds of CPU) and blocking file I/O. A loop submits a job and gets its result back on
/// its own thread through `EventLoop.execute` (the loop's eventfd).
final class BlockingPool: @unchecked Sendable {
    private let queue = Mutex<[@Sendable () -> Void]>([])
    private var mutex = pthread_mutex_t()
    private var ready = pthread_cond_t()
    private let maxQueued: Int

    init(threads: Int, maxQueued: Int = 10_000) {
        self.maxQueued = maxQueued
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&ready, nil)
        for _ in 0..<max(1, threads) {
            var t = pthread_t()
            let box = Unmanaged.passRetained(self).toOpaque()
            pthread_create(&t, nil, { raw in
                Unmanaged<BlockingPool>.fromOpaque(raw!).takeRetainedValue().work()
                return nil
            }, box)
            pthread_detach(t)
        }
    }

    /// Queues `job`; false when the queue is full (the caller answers 503 rather than wait).
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let accepted = queue.withLock { q -> Bool in
            guard q.count < maxQueued else { return false }
            q.append(job)
            return true
        }
        if accepted {
            pthread_mutex_lock(&mutex)
            pthread_cond_signal(&ready)
            pthread_mutex_unlock(&mutex)
        }
        return accepted
    }

    private func work() {
        while true {
            pthread_mutex_lock(&mutex)
            var job = queue.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            while job == nil {
                pthread_cond_wait(&ready, &mutex)
                job = queue.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            }
            pthread_mutex_unlock(&mutex)
            job?()
        }
    }
}
