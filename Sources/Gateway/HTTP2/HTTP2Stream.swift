import CGatewayShims
import Glibc
import TokenCore

/// One HTTP/2 stream: a request exactly as an HTTP/1.1 one is. Its header list is written out as
/// an HTTP/1.1 head (HTTP2RequestHead.swift) and goes the same way: the strict parser, the
/// verdict (endpoint table, route, bearer check, limits), then the gateway's own endpoint or an
/// exchange on a pooled upstream connection, to which the stream is the client side
/// (HTTP2ProxyStream.swift). The gateway's own endpoints get their whole (small) body first.
final class HTTP2Stream {
    enum Phase {
        /// The header block is arriving.
        case headers
        /// One of the gateway's own endpoints, waiting for the rest of its small body.
        case awaitingBody(Endpoint)
        /// Forwarded: the exchange runs on this upstream connection.
        case proxying(UpstreamConnection)
        /// A handler's work runs on the blocking pool (`ticket`); then its answer, held back
        /// until the deadline when it must wait (the failed-login delay).
        case pending(ticket: UInt64, work: DeferredAnswer?, held: LocalResponse?)
        /// The answer is submitted; its body goes out as the client's window allows.
        case answering
        /// Reset, or closed: nothing more happens.
        case done
    }

    let id: Int32
    /// Strong: a stream may outlive its connection's last event by a call (an upstream event
    /// finishing after the connection closed). The cycle is broken when the connection drops
    /// the stream (closed, or the connection's end).
    let connection: HTTP2Connection
    private(set) var phase = Phase.headers
    private var head: HTTP2RequestHead
    private var headBuffer: ByteBuffer?
    /// Request body bytes received and not yet passed on.
    var body: ByteBuffer?
    /// Bytes of `body` and `answer` counted against the connection's limit.
    private var bodyHeld = 0
    private var answerHeld = 0
    /// The client ended its side (END_STREAM).
    private(set) var requestComplete = false
    /// Answer body bytes waiting for the session's data source.
    var answer: ByteBuffer?
    private var localBody: [UInt8]?
    private var localOffset = 0
    /// Everything of the answer is in `answer` or `localBody`.
    var answerComplete = false
    /// The data source said "deferred": `resumeData` is due when bytes come.
    var answerWaiting = false
    /// The answer is complete but the request was not: the stream ends with RST_STREAM NO_ERROR.
    private var resetOnceAnswered = false
    var isHEAD = false
    var envelopeErrors = false
    var tokenExpiresAt: Int64 = 0
    /// A WebSocket over this stream (RFC 8441): once the upstream accepts, bytes pass both ways.
    var isTunnel = false
    var tunnelOpen = false
    /// The client's end of the tunnel was passed on (the upstream's write side shut).
    var halfClosedUpstream = false
    /// Who opened the tunnel, checked again for revocation while it lasts.
    var tunnelIdentity: TunnelIdentity?
    var logLine = AccessLogEntry()
    private var logged = false
    let start: UInt64
    /// The configuration the stream started with (a reload meanwhile does not change its way).
    let snapshot: GatewayState
    /// Request body bytes received and not yet given back to the client's window.
    private var unconsumed = 0
    /// When the stream's current wait runs out (0: none).
    var deadline: UInt64 = 0

    init(id: Int32, connection: HTTP2Connection) {
        self.id = id
        self.connection = connection
        start = connection.worker.loop.now
        snapshot = connection.worker.state
        head = HTTP2RequestHead(limit: snapshot.httpLimits.headerBytes, pool: connection.worker.buffers)
        setDeadline(UInt64(snapshot.config.server.headerTimeoutMs))
    }

    var worker: Worker { connection.worker }
    var session: HTTP2Session { connection.session }

    // MARK: the request

    func header(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        guard case .headers = phase else { return }
        if headBuffer == nil { headBuffer = worker.buffers.take() }
        // A WebSocket's upgrade goes up with a fresh key (the HTTP/2 client sends none).
        if HTTP2RequestHead.same(name, ":protocol") { head.webSocketKey = HTTP2Stream.newWebSocketKey() }
        head.add(name: name, value: value, into: &headBuffer!)
    }

    func headersEnded(endStream: Bool) {
        guard case .headers = phase else { return }
        requestComplete = endStream
        if headBuffer == nil { headBuffer = worker.buffers.take() }
        if let failure = head.failure { refuse(failure); return }
        // The gateway's own endpoints read a small body whole: it is gathered first.
        if !endStream, let path = head.pathBytes(in: headBuffer!), let length = try? Router.checkTarget(path) {
            switch snapshot.endpoints.match(UnsafeRawBufferPointer(rebasing: path[0..<length])) {
            case .proxy, .notFound: break
            case let own:
                phase = .awaitingBody(own)
                if head.expectsContinue { session.submitContinue(id) }
                setDeadline(UInt64(snapshot.config.server.bodyTimeoutMs))
                return
            }
        }
        // A WebSocket's stream stays open for the tunnel: its request has no body.
        dispatch(endStream || head.hasContentLength || head.isWebSocket ? .asSent : .chunked)
    }

    func data(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .awaitingBody:
            // At most a little past the endpoints' 4 KiB: more is refused by its length alone.
            if body == nil { body = worker.buffers.take() }
            if body!.readableBytes <= Self.ownBodyLimit { _ = body!.append(UnsafeRawBufferPointer(rebasing: bytes.prefix(Self.ownBodyLimit + 1 - body!.readableBytes))) }
            session.consume(id, bytes.count)
            progress(UInt64(snapshot.config.server.bodyTimeoutMs))
        case let .proxying(u):
            if body == nil { body = worker.buffers.take() }
            if body!.writableBytes < bytes.count { body!.compact() }
            if body!.writableBytes < bytes.count { _ = worker.buffers.enlarge(&body!) }
            holdBody()
            // The stream window (64 KiB) never lets more in than a large buffer holds.
            unconsumed += bytes.count
            guard body!.append(bytes) else {
                consumed(bytes.count)  // dropped: the window gets them back
                exchangeAborted("flow_control")
                return
            }
            // A tunnel's bytes wait until the upstream has accepted it.
            if isTunnel {
                if tunnelOpen { moveTunnelBytes(u) }
            } else {
                u.requestBodyArrived()
            }
        default:
            // An answered or reset stream: the bytes are dropped, the window given back.
            session.consume(id, bytes.count)
        }
    }

    func requestEnded() {
        requestComplete = true
        switch phase {
        case .awaitingBody:
            dispatch(.length(body?.readableBytes ?? 0))
        case let .proxying(u):
            if isTunnel {
                if tunnelOpen { moveTunnelBytes(u) }
            } else {
                u.requestBodyArrived()
            }
        default:
            break
        }
    }

    /// The most body bytes gathered for one of the gateway's own endpoints (they take 4 KiB).
    static let ownBodyLimit = 4096

    /// Finishes the head (with the gathered body after it) and hands it on.
    private func dispatch(_ framing: HTTP2RequestHead.Framing) {
        let range: Range<Int>
        switch head.finish(framing, into: &headBuffer!) {
        case let .failure(f): refuse(f); return
        case let .success(r): range = r
        }
        if let b = body, case .length = framing {
            _ = headBuffer!.append(b.readable) || worker.buffers.enlarge(&headBuffer!) && headBuffer!.append(b.readable)
            releaseBody()
        }
        let bytes = UnsafeRawBufferPointer(start: headBuffer!.base + range.lowerBound, count: headBuffer!.writerIndex - range.lowerBound)
        let parsed = parseRequestHead(bytes, fields: worker.requestFields, limits: snapshot.httpLimits)
        guard case let .complete(h) = parsed else {
            logLine.method("-")
            if case let .error(e) = parsed { respond(.error(GatewayResponse(parseError: e))) } else { respond(.error(.badRequest)) }
            return
        }
        isHEAD = h.isHEAD
        let verdict = worker.verdict(on: h, in: bytes, snapshot: snapshot, log: &logLine)
        envelopeErrors = verdict.envelopeErrors
        switch verdict.action {
        case let .refuse(r), let .refuseAndClose(r):
            respond(.error(r))
        case let .own(endpoint):
            let request = EndpointRequest(head: h, bytes: bytes, fields: worker.requestFields, worker: worker,
                                          snapshot: snapshot, peer: connection.peer)
            execute(request.answer(endpoint, log: &logLine), head: h)
        case let .proxy(plan):
            tokenExpiresAt = plan.tokenExpiresAt
            tunnelIdentity = plan.tunnelIdentity
            isTunnel = h.upgradeWebSocket
            let u: UpstreamConnection
            do {
                u = try worker.startExchange(plan, head: h, in: bytes, stream: self, peer: connection.peer,
                                             scheme: connection.transport.scheme, snapshot: snapshot, log: &logLine)
            } catch .noUpstream {
                respond(.error(.badGateway))
                return
            } catch {
                respond(.error(.headersTooLarge))
                return
            }
            releaseHead()
            phase = .proxying(u)
            if h.expectContinue && !requestComplete { session.submitContinue(id) }
            u.sendRequest()
        }
        releaseHead()
    }

    /// A header list the gateway cannot take: 431 for its size, RST_STREAM PROTOCOL_ERROR when
    /// malformed (nothing forwarded either way).
    private func refuse(_ failure: HTTP2RequestHead.Failure) {
        logLine.method("-")
        switch failure {
        case .tooLarge:
            respond(.error(.headersTooLarge))
        case .malformed:
            logLine.closed = "malformed_request"
            reset(NGHTTP2_PROTOCOL_ERROR)
        }
    }

    // MARK: the gateway's own answers

    private func execute(_ outcome: EndpointOutcome, head h: RequestHead) {
        switch outcome {
        case let .respond(response, _):
            respond(response)
        case let .respondAndClose(response):
            respond(.error(response))
        case .awaitBody:
            respond(.error(.badRequest))  // the whole body was given: a handler never waits here
        case let .deferred(d):
            let ticket = connection.nextTicket()
            phase = .pending(ticket: ticket, work: d, held: nil)
            setDeadline(DeferredAnswer.timeoutMs)
            let slot = connection.socket.slot, generation = connection.generation, stream = id, job = d.job
            let box = WorkerBox(worker)
            let accepted = worker.blocking.submit {
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
        guard case let .pending(t, work?, _) = phase, t == ticket else { return }
        let (response, delayMs) = work.finish(ok)
        guard delayMs > 0 else { respond(response); return }
        phase = .pending(ticket: t, work: nil, held: response)
        setDeadline(delayMs)
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
        answerComplete = true
        phase = .answering
        releaseHead()
        releaseBody()
        setDeadline(UInt64(snapshot.config.server.idleTimeoutMs))
        if body?.isEmpty ?? true { answered() }
        connection.outputDue()
    }

    // MARK: the answer's body, read by the session

    /// Copies what is ready of the answer body into `buf`: (bytes, the end), or (-1, false)
    /// when nothing is ready yet.
    func readAnswer(into buf: UnsafeMutableRawBufferPointer) -> (Int, Bool) {
        var n = 0
        if let local = localBody {
            n = min(buf.count, local.count - localOffset)
            local.withUnsafeBytes { buf.baseAddress!.copyMemory(from: $0.baseAddress! + localOffset, byteCount: n) }
            localOffset += n
            if localOffset == local.count { localBody = nil }
        } else if answer != nil {
            n = min(buf.count, answer!.readableBytes)
            buf.baseAddress!.copyMemory(from: answer!.readable.baseAddress!, byteCount: n)
            answer!.consume(n)
            if answer!.isEmpty { releaseAnswer() }
        }
        let end = answerComplete && localBody == nil && answer == nil
        if n == 0 && !end {
            answerWaiting = true
            return (-1, false)
        }
        if n > 0 { progress(UInt64(snapshot.config.server.idleTimeoutMs)) }
        if end {
            answered()
        } else if case .proxying = phase {
            connection.answerDrained(self)  // the upstream reads on once the send returns
        }
        return (n, end)
    }

    /// The answer has gone whole to the session: a request still being sent is cut short.
    func answered() {
        if !requestComplete {
            resetOnceAnswered = true
            connection.answerDrained(self)
        }
    }

    /// Called after the session's send: room in the answer buffer, or the answer ended.
    func answerHasRoom() {
        if resetOnceAnswered {
            resetOnceAnswered = false
            session.reset(id, NGHTTP2_NO_ERROR)
            connection.outputDue()
            return
        }
        guard case let .proxying(u) = phase else { return }
        if tunnelOpen { moveTunnelBytes(u) } else { u.streamHasRoom() }
    }

    // MARK: time

    func setDeadline(_ ms: UInt64) {
        deadline = worker.loop.now + ms
        connection.streamDeadlineSet(deadline)
    }

    /// Bytes moved: the current wait starts over (a slow but moving stream is not cut).
    func progress(_ ms: UInt64) {
        deadline = worker.loop.now + ms
    }

    func timerFired() {
        deadline = 0
        switch phase {
        case let .pending(_, _, held):
            respond(held ?? .error(.serviceUnavailable))
        case let .proxying(u):
            u.exchangeTimedOut()
        case .headers, .awaitingBody, .answering:
            logLine.closed = "timeout"
            reset(NGHTTP2_CANCEL)
        case .done:
            break
        }
    }

    // MARK: ending

    /// Ends the stream with RST_STREAM `code`; its exchange, if any, closes.
    func reset(_ code: nghttp2_error_code) {
        if case let .proxying(u) = phase { u.pool.close(u) }
        phase = .done
        session.reset(id, code)
        connection.outputDue()
    }

    /// nghttp2 closed the stream (answered whole, or reset by either side).
    func closed(errorCode: UInt32) {
        if case let .proxying(u) = phase {
            u.pool.close(u)
            if logLine.closed == nil { logLine.closed = "client_reset" }
        } else if case .answering = phase, errorCode != NGHTTP2_NO_ERROR.rawValue, logLine.closed == nil {
            logLine.closed = "client_reset"
        }
        finish()
    }

    /// The connection ends with the stream still open.
    func connectionEnds(_ why: StaticString) {
        if case let .proxying(u) = phase { u.pool.close(u) }
        if logLine.closed == nil, !answerComplete || answer != nil || localBody != nil { logLine.closed = why }
        finish()
    }

    private func finish() {
        phase = .done
        releaseHead()
        releaseBody()
        releaseAnswer()
        localBody = nil
        writeAccessLog()
    }

    func writeAccessLog() {
        guard !logged else { return }
        logged = true
        guard snapshot.config.log.access else { return }
        logLine.http2 = true
        worker.logAccess(&logLine, peer: connection.peer, durationMs: Int64(worker.loop.now - start))
    }

    private func releaseHead() {
        if let b = headBuffer { worker.buffers.release(b); headBuffer = nil }
    }

    /// Counts `body`'s buffer against the connection's limit (its size may have grown).
    private func holdBody() {
        let now = body?.capacity ?? 0
        connection.hold(now - bodyHeld)
        bodyHeld = now
    }

    /// Counts `answer`'s buffer against the connection's limit.
    func holdAnswer() {
        let now = answer?.capacity ?? 0
        connection.hold(now - answerHeld)
        answerHeld = now
    }

    /// `n` request body bytes were passed on: the client's window gets them back.
    func consumed(_ n: Int) {
        guard n > 0 else { return }
        unconsumed -= n
        session.consume(id, n)
        connection.outputDue()  // the WINDOW_UPDATE
    }

    /// Drops the request body buffer; what it held that was never passed on is given back to the
    /// connection's window all the same (nghttp2 does not for a closed stream).
    func releaseBody() {
        if unconsumed > 0 { consumed(unconsumed) }
        guard let b = body else { return }
        worker.buffers.release(b)
        body = nil
        holdBody()
    }

    func releaseAnswer() {
        guard let b = answer else { return }
        worker.buffers.release(b)
        answer = nil
        holdAnswer()
    }

    /// A `Sec-WebSocket-Key` for the HTTP/1.1 upgrade (16 random bytes, base64).
    static func newWebSocketKey() -> String {
        let url = Base64URL.encode(Crypto.randomBytes(16))
        return String(url.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 }) + "=="
    }

    /// The exchange moved to a fresh upstream connection (the one retry).
    func moved(to u: UpstreamConnection) { phase = .proxying(u) }

    /// The exchange ended (answered, failed or cut): the stream no longer has one.
    func exchangeEnded() { if case .proxying = phase { phase = .answering } }
}
