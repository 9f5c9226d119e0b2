import CGatewayShims
import Glibc

/// One HTTP/2 stream: a request exactly as an HTTP/1.1 one is. Its header list is written out as
/// an HTTP/1.1 head (HTTP2RequestHead.swift) and goes the same way: the strict parser, the
/// verdict (endpoint table, route, bearer check, limits), then the gateway's own endpoint or an
/// exchange on a pooled upstream connection, to which the stream is the client side
/// (HTTP2ProxyStream.swift). The gateway's own endpoints get their whole (small) body first.
///
/// The stream's state is a value (`HTTP2StreamState`); this class holds the buffers and does
/// what the state's transitions say.
final class HTTP2Stream {
    let id: Int32
    /// Strong: a stream may outlive its connection's last event by a call (an upstream event
    /// finishing after the connection closed). The cycle is broken when the connection drops
    /// the stream (closed, or the connection's end).
    let connection: HTTP2Connection
    /// Set only by this file and its extensions (HTTP2ProxyStream, HTTP2Tunnel).
    var state = HTTP2StreamState<UpstreamConnection>()
    private var head: HTTP2RequestHead
    private var headBuffer: ByteBuffer?
    /// Request body bytes received and not yet passed on.
    var body: ByteBuffer?
    /// Bytes of `body` and `answer` counted against the connection's limit.
    private var bodyHeld = 0
    private var answerHeld = 0
    /// Answer body bytes waiting for the session's data source.
    var answer: ByteBuffer?
    /// The gateway's own answer body (HTTP2StreamLocalAnswer.swift), and how much of it went.
    var localBody: [UInt8]?
    private var localOffset = 0
    var isHEAD = false
    var envelopeErrors = false
    var tokenExpiresAt: Int64 = 0
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
        worker = connection.worker
        start = connection.worker.loop.now
        snapshot = connection.worker.state
        head = HTTP2RequestHead(limit: snapshot.httpLimits.headerBytes, pool: connection.worker.buffers)
        setDeadline(UInt64(snapshot.config.server.headerTimeoutMs))
    }

    /// The loop's worker, which outlives every connection and stream on it.
    unowned(unsafe) let worker: Worker
    var session: HTTP2Session { connection.session }

    // MARK: the request

    func header(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        guard case .headers = state.phase else { return }
        if headBuffer == nil { headBuffer = worker.buffers.take() }
        // A WebSocket's upgrade goes up with a fresh key (the HTTP/2 client sends none).
        if HTTP2RequestHead.same(name, ":protocol") { head.webSocketKey = HTTP2RequestHead.newWebSocketKey() }
        head.add(name: name, value: value, into: &headBuffer!)
    }

    func headersEnded(endStream: Bool) {
        guard case .headers = state.phase else { return }
        if headBuffer == nil { headBuffer = worker.buffers.take() }
        // A WebSocket's stream stays open for the tunnel: its request has no body.
        switch state.headersEnded(endStream: endStream, failure: head.failure, ownEndpoint: !endStream && head.failure == nil && targetsOwnEndpoint,
                                  expectsContinue: head.expectsContinue, lengthKnown: head.hasContentLength || head.isWebSocket) {
        case .ignore:
            break
        case let .refuse(failure):
            refuse(failure)
        case let .gatherBody(sendContinue):
            // The gateway's own endpoints read a small body whole: it is gathered first.
            if sendContinue { session.submitContinue(id) }
            setDeadline(UInt64(snapshot.config.server.bodyTimeoutMs))
        case let .dispatch(framing):
            dispatch(framing)
        }
    }

    /// The request's target is one of the gateway's own endpoints.
    private var targetsOwnEndpoint: Bool {
        guard let path = head.pathBytes(in: headBuffer!), let length = try? Router.checkTarget(path) else { return false }
        switch snapshot.endpoints.match(UnsafeRawBufferPointer(rebasing: path[0..<length])) {
        case .proxy, .notFound: return false
        default: return true
        }
    }

    func data(_ bytes: UnsafeRawBufferPointer) {
        let action = state.dataArrived()
        switch action {
        case .gather:
            // At most a little past the endpoints' 4 KiB: more is refused by its length alone.
            if body == nil { body = worker.buffers.take() }
            if body!.readableBytes <= Self.ownBodyLimit { _ = body!.append(UnsafeRawBufferPointer(rebasing: bytes.prefix(Self.ownBodyLimit + 1 - body!.readableBytes))) }
            session.consume(id, bytes.count)
            progress(UInt64(snapshot.config.server.bodyTimeoutMs))
        case let .forward(u):
            if keepForUpstream(bytes) { u.requestBodyArrived() }
        case let .tunnel(u, open):
            // A tunnel's bytes wait until the upstream has accepted it.
            if keepForUpstream(bytes) && open { moveTunnelBytes(u) }
        case .drop:
            // An answered or reset stream: the bytes are dropped, the window given back.
            session.consume(id, bytes.count)
        }
    }

    /// Buffers request body bytes until the upstream takes them; false (the exchange cut) when
    /// they do not fit.
    private func keepForUpstream(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if body == nil { body = worker.buffers.take() }
        if body!.writableBytes < bytes.count { body!.compact() }
        if body!.writableBytes < bytes.count { _ = worker.buffers.enlarge(&body!) }
        holdBody()
        // The stream window (64 KiB) never lets more in than a large buffer holds.
        unconsumed += bytes.count
        guard body!.append(bytes) else {
            consumed(bytes.count)  // dropped: the window gets them back
            exchangeAborted("flow_control")
            return false
        }
        return true
    }

    func requestEnded() {
        switch state.requestEnded() {
        case .dispatchGathered: dispatch(.length(body?.readableBytes ?? 0))
        case let .bodyComplete(u): u.requestBodyArrived()
        case let .tunnel(u): moveTunnelBytes(u)
        case .none: break
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
            state.proxyingBegins(u, tunnel: h.upgradeWebSocket)
            if h.expectContinue && !state.requestComplete { session.submitContinue(id) }
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
        if n > 0 { progress(UInt64(snapshot.config.server.idleTimeoutMs)) }
        switch state.answerRead(count: n, bufferEmpty: localBody == nil && answer == nil) {
        case .deferred:
            return (-1, false)
        case let .more(drained):
            // The upstream reads on once the send returns.
            if drained { connection.answerDrained(self) }
            return (n, false)
        case let .ended(drained):
            if drained { connection.answerDrained(self) }
            return (n, true)
        }
    }

    /// The answer has gone whole to the session: a request still being sent is cut short.
    func answered() {
        if state.answered() { connection.answerDrained(self) }
    }

    /// Resumes the session's data source if it waits for bytes.
    func resumeAnswer() {
        if state.takeAnswerWaiting() { session.resumeData(id) }
    }

    /// Called after the session's send: room in the answer buffer, or the answer ended.
    func answerHasRoom() {
        switch state.answerHasRoom() {
        case .resetNoError:
            session.reset(id, NGHTTP2_NO_ERROR)
            connection.outputDue()
        case let .tunnel(u): moveTunnelBytes(u)
        case let .readOn(u): u.streamHasRoom()
        case .none: break
        }
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
        switch state.timerFired() {
        case let .respond(response):
            respond(response)
        case let .exchangeTimedOut(u):
            u.exchangeTimedOut()
        case .cancel:
            logLine.closed = "timeout"
            reset(NGHTTP2_CANCEL)
        case .none:
            break
        }
    }

    // MARK: ending

    /// Ends the stream with RST_STREAM `code`; its exchange, if any, closes.
    func reset(_ code: nghttp2_error_code) {
        if let u = state.reset() { u.pool.close(u) }
        session.reset(id, code)
        connection.outputDue()
    }

    /// nghttp2 closed the stream (answered whole, or reset by either side).
    func closed(errorCode: UInt32) {
        let (u, cut) = state.closed(byError: errorCode != NGHTTP2_NO_ERROR.rawValue)
        if let u { u.pool.close(u) }
        if cut && logLine.closed == nil { logLine.closed = "client_reset" }
        finish()
    }

    /// The connection ends with the stream still open.
    func connectionEnds(_ why: StaticString) {
        let unfinished = !state.answerComplete || answer != nil || localBody != nil
        if let u = state.connectionEnds() { u.pool.close(u) }
        if logLine.closed == nil, unfinished { logLine.closed = why }
        finish()
    }

    private func finish() {
        releaseHead()
        releaseBody()
        releaseAnswer()
        localBody = nil
        writeAccessLog()
    }

    func writeAccessLog() {
        guard !logged else { return }
        logged = true
        logLine.http2 = true
        worker.requestEnded(&logLine, peer: connection.peer, durationMs: Int64(worker.loop.now - start), logged: snapshot.config.log.access)
    }

    func releaseHead() {
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
}
