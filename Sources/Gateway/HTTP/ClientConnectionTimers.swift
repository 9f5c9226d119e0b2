/// A client connection's one deadline: what it is set to (the state machine names the timeout,
/// the configuration its length), pushed out by progress, and what happens when it passes.
extension ClientConnection {
    /// Moves the deadline; the heap gets a new entry only when it moves earlier.
    func setDeadline(_ time: UInt64, keepIfEarlier: Bool) {
        if keepIfEarlier && deadline > worker.loop.now && deadline <= time { return }
        deadline = time
        if timerAt == 0 || time < timerAt {
            timerAt = time
            worker.loop.schedule(at: time, slot: socket.slot, generation: generation)
        }
    }

    func milliseconds(_ timeout: ClientConnectionState<UpstreamConnection>.Timeout) -> UInt64 {
        switch timeout {
        case .header: return UInt64(config.server.headerTimeoutMs)
        case .idle: return UInt64(config.server.idleTimeoutMs)
        case .body: return UInt64(config.server.bodyTimeoutMs)
        case .response: return UInt64(config.server.responseTimeoutMs)
        }
    }

    func armIdleDeadline() {
        idleTurn = worker.connectionWaits(slot: socket.slot, generation: generation)
        setDeadline(worker.loop.now + milliseconds(machine.nextRequestTimeout), keepIfEarlier: false)
    }

    /// Progress on the wire pushes the body/idle deadline out (slow but moving is fine).
    @inline(__always)
    func progress() {
        var awaitsAnswerHead = false
        if case let .proxying(u) = machine.state { awaitsAnswerHead = u.exchange.awaitsAnswerHead }
        if let timeout = machine.progressTimeout(answersBacklogged: answersBacklogged, awaitsAnswerHead: awaitsAnswerHead) {
            deadline = worker.loop.now + milliseconds(timeout)
        }
    }

    /// The timer entry at `timerAt` came due.
    func timerFired(now: UInt64) {
        timerAt = 0
        if machine.isClosed { return }
        if now < deadline {
            timerAt = deadline
            worker.loop.schedule(at: deadline, slot: socket.slot, generation: generation)
            return
        }
        switch machine.timerFired(answersBacklogged: answersBacklogged, partialHead: !(input?.isEmpty ?? true)) {
        case .close:
            close()
        case .cutSlowHead:
            logLine.reset()
            logLine.method("-")
            respondAndClose(.badRequest)
        case let .exchangeTimedOut(u):
            u.exchangeTimedOut()
        case .pendingDue:
            pendingTimerFired()
        }
    }
}
