import CGatewayShims

/// The gateway's own endpoints (login, refresh, about, healthz...) answering on an HTTP/2
/// stream: at once, or after work on the blocking pool (a password check, an fsync), held back
/// for the failed-login delay when it must be. The answer is submitted whole; its body goes out
/// through the session's data source as the client's window allows.
extension HTTP2Stream {
    func execute(_ outcome: EndpointOutcome, head h: RequestHead) {
        switch outcome {
        case let .respond(response, _):
            respond(response)
        case let .respondAndClose(response):
            respond(.error(response))
        case .awaitBody:
            respond(.error(.badRequest))  // the whole body was given: a handler never waits here
        case let .deferred(d):
            let ticket = connection.nextTicket()
            state.pendingBegins(ticket: ticket, work: d)
            setDeadline(DeferredAnswer.timeoutMs)
            let slot = connection.socket.slot, generation = connection.generation, stream = id, job = d.job
            let box = WorkerBox(worker)
            let accepted = (d.pool ?? worker.blocking).submit {
                let ok = job()
                box.worker.loop.execute {
                    box.worker.http2DeferredDone(slot: slot, generation: generation, stream: stream, ticket: ticket, ok: ok)
                }
            }
            if !accepted { respond(d.unavailable()) }
        }
    }

    /// The work of `ticket` came back (on the connection's loop).
    func finishDeferred(ticket: UInt64, ok: Bool) {
        switch state.workDone(ticket: ticket, ok: ok) {
        case .stale: break
        case let .respond(response): respond(response)
        case let .hold(delayMs): setDeadline(delayMs)
        }
    }

    /// Submits `response` (shaped for the route) as this stream's answer.
    func respond(_ response: LocalResponse) {
        let m = ResponseWriter.message(response.shaped(envelopeErrors: envelopeErrors))
        logLine.status = m.status
        let body = isHEAD ? nil : m.body
        let submitted = worker.http2Fields.withLocal(m, bodyLength: m.body?.count) { nva, count in
            session.submitResponse(id, nva, count: count, endStream: body?.isEmpty ?? true)
        }
        guard submitted else { reset(NGHTTP2_INTERNAL_ERROR); return }
        logLine.bytes = Int64(body?.count ?? 0)
        localBody = body
        state.answerSubmitted()
        releaseHead()
        releaseBody()
        setDeadline(UInt64(snapshot.config.server.idleTimeoutMs))
        if body?.isEmpty ?? true { answered() }
        connection.outputDue()
    }
}
