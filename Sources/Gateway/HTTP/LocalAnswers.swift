/// How an HTTP/1.1 connection carries out what an endpoint handler decided: answer now, answer
/// and close, wait for the rest of a small body, or wait (`.pending`) for work on the blocking
/// pool, whose result comes back to this loop with the ticket it was given.
extension ClientConnection {
    /// Carries out `outcome` for the request `head`; true when the next input may be read now.
    func execute(_ outcome: EndpointOutcome, head: RequestHead) -> Bool {
        if case .awaitBody = outcome {} else { machine.request.sentContinue = false }
        switch outcome {
        case let .respond(response, bodyRead):
            respond(response, head: head, bodyRead: bodyRead)
            return machine.readsNextInput
        case let .respondAndClose(response):
            respondAndClose(response)
            return false
        case .awaitBody:
            if machine.continueNeeded(expectContinue: head.expectContinue) {
                _ = appendOutput(ResponseWriter.continueLine)
                _ = flush()
            }
            return false
        case let .deferred(d):
            // The whole request must be read before its answer is awaited: bytes left behind
            // would be parsed as the next request once the answer is given.
            guard !head.chunked, d.consumed == head.headLength + Int(head.contentLength ?? 0) else {
                respondAndClose(.badRequest)
                return false
            }
            consumeInput(d.consumed)
            let ticket = machine.pendingBegins(d)
            setDeadline(worker.loop.now + DeferredAnswer.timeoutMs, keepIfEarlier: false)
            let slot = socket.slot, generation = self.generation, job = d.job
            let box = WorkerBox(worker)
            let accepted = (d.pool ?? worker.blocking).submit {
                let ok = job()
                // Back to the connection's own loop; the worker is touched only there.
                box.worker.loop.execute { box.worker.deferredDone(slot: slot, generation: generation, ticket: ticket, ok: ok) }
            }
            guard accepted else {
                deliver(machine.pendingAnswered(d.unavailable()))
                return machine.readsNextInput
            }
            return false
        }
    }

    /// The work of ticket `ticket` came back (on this connection's loop).
    func finishDeferred(ticket: UInt64, ok: Bool) {
        guard let work = machine.workDone(ticket: ticket) else { return }
        let (response, delayMs) = work.finish(ok)
        guard delayMs > 0 else { deliverPending(response); return }
        machine.holdAnswer(response)
        setDeadline(worker.loop.now + delayMs, keepIfEarlier: false)
    }

    /// The pending answer's time has come (the delayed 401) or the work took too long.
    func pendingTimerFired() {
        deliver(machine.pendingAnswered())
        if machine.isAwaitingHead { processInput() }
        updateInterest()
    }

    /// Gives a pending request its answer and goes on with the input that waited.
    private func deliverPending(_ response: LocalResponse) {
        deliver(machine.pendingAnswered(response))
        if machine.isAwaitingHead { processInput() }
        updateInterest()
    }

    /// Queues the answer of a request that was pending (its state moved on already).
    private func deliver(_ response: LocalResponse) {
        let answer = wire(response, close: answerEndsConnection)
        guard appendOutput(answer.bytes) else { respondAndClose(.internalError); return }
        logLine.status = answer.status
        logLine.bytes = Int64(answer.bytes.count)
        finishLocalRequest()
    }
}

extension Worker {
    /// Work for a pending answer finished on the blocking pool; the connection may be gone.
    func deferredDone(slot: Int32, generation: UInt32, ticket: UInt64, ok: Bool) {
        guard case let .client(c)? = loop.handler(slot, generation: generation) else { return }
        c.finishDeferred(ticket: ticket, ok: ok)
        if !c.machine.isClosed { c.updateInterest() }
    }
}
