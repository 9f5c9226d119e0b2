/// An HTTP/2 connection's one timer entry: the earliest of its own deadline (no stream opened
/// within `header_timeout`, or none within `idle_timeout` after the last) and its streams'
/// deadlines, each dealt with as it passes.
extension HTTP2Connection {
    func setDeadline(_ time: UInt64) {
        deadline = time
        if timerAt == 0 || time < timerAt {
            timerAt = time
            worker.loop.schedule(at: time, slot: socket.slot, generation: generation)
        }
    }

    /// With no stream open, the connection has `idle_timeout` (or `header_timeout` before its
    /// first request) to open one.
    func armIdleDeadlineIfIdle() {
        guard streams.isEmpty else { return }
        idleTurn = worker.connectionWaits(slot: socket.slot, generation: generation)
        let ms = sawStream ? config.server.idleTimeoutMs : config.server.headerTimeoutMs
        setDeadline(worker.loop.now + UInt64(ms))
    }

    /// The connection's timer entry came due: streams past their deadline are dealt with, and an
    /// idle connection past its own goes away.
    func timerFired(now: UInt64) {
        timerAt = 0
        guard !isClosed else { return }
        var next = UInt64.max
        if streams.isEmpty {
            if now >= deadline {
                session.goAway()
                send()
                close()
                return
            }
            next = deadline
        }
        for s in Array(streams.values) {
            if s.deadline != 0 && s.deadline <= now { s.timerFired() }
            if s.deadline != 0 { next = min(next, s.deadline) }
        }
        if !isClosed && next != .max {
            timerAt = next
            worker.loop.schedule(at: next, slot: socket.slot, generation: generation)
        }
        afterEvent()
    }

    /// A stream's deadline moved: the connection's timer fires by then.
    func streamDeadlineSet(_ time: UInt64) {
        if timerAt == 0 || time < timerAt {
            timerAt = time
            worker.loop.schedule(at: time, slot: socket.slot, generation: generation)
        }
    }
}
