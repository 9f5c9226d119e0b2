import CGatewayShims
import Glibc
import TokenCore

/// One HTTP/1.1 client connection, owned by one loop thread: reads request heads, answers what
/// the gateway answers itself, and hands the rest to the proxy as a `ProxyStream`
/// (HTTP1ProxyStream.swift). Its bytes pass through its `transport` (plain or TLS).
///
/// Buffers come from the loop's pool when there are bytes to hold and go back when the connection
/// is idle, so an idle keep-alive connection is this object and nothing else.
final class ClientConnection {
    enum State {
        /// Waiting for (the rest of) a request head.
        case awaitingHead
        /// A request is answered (by the gateway, or early by the upstream) and the rest of its
        /// body is being read and dropped.
        case discardingBody(BodyDiscard)
        /// A request is with the upstream; its answer is relayed.
        case proxying(UpstreamConnection)
        /// The gateway's own answer is being prepared off the loop (password check) or held
        /// back (the failed-login delay).
        case pending
        /// A WebSocket (or other upgrade) tunnel: bytes both ways, unparsed.
        case tunnel(UpstreamConnection)
        /// After an error: our answer is flushed, the write side shut, input read and dropped
        /// until the peer closes or the linger time ends (RFC 9112 9.6).
        case lingering
        case closed
    }

    let fd: Int32
    let generation: UInt32
    unowned let worker: Worker
    let peer: PeerAddress
    var transport: Transport
    var state: State = .awaitingHead
    var input: ByteBuffer?
    var output: ByteBuffer?
    /// The snapshot the current request started with.
    var snapshot: GatewayState
    var deadline: UInt64 = 0
    /// Time of this connection's entry in the loop's timer heap (0: none).
    var timerAt: UInt64 = 0
    var served = 0
    /// Close once `output` is flushed (no keep-alive).
    var closeAfterFlush = false
    var peerClosed = false
    /// The client of the current request asked for keep-alive.
    var keepAlive = true
    var requestIsHEAD = false
    /// The request in flight is HTTP/1.1 (chunked may be used toward the client).
    var clientSpeaks11 = false
    /// The answer's body is written with chunked framing.
    var responseChunked = false
    var requestStart: UInt64 = 0
    /// Access-log fields of the current request (copied: the input buffer moves on).
    var logLine = AccessLogEntry()
    /// The work a `.pending` request waits for, and its ticket: a result that comes back for
    /// an earlier ticket (its request timed out) is dropped, never given to a later request.
    var deferred: DeferredAnswer?
    var deferredTicket: UInt64 = 0
    /// The answer a `.pending` request gets when its timer fires (the failed-login delay).
    var pendingAnswer: LocalResponse?
    /// 100 Continue already sent for the request whose body is awaited.
    var sentContinue = false
    /// The current request's route wants envelope-shaped errors.
    var envelopeErrors = false
    /// Unix time at which the token of the request in flight expires (0: none, or the route
    /// does not end streams with their token).
    var tokenExpiresAt: Int64 = 0
    /// Who opened a tunnel, kept for revocation checks while it lasts (tunnels only).
    var tunnelIdentity: TunnelIdentity?

    struct TunnelIdentity {
        let subject: [UInt8]
        let tokenID: [UInt8]
        let loginID: [UInt8]
        let issuedAt: Int64
    }

    /// An answer of the gateway's own in the shape the current route wants, as wire bytes, and
    /// the status it carries.
    func wire(_ response: LocalResponse, close: Bool) -> (bytes: [UInt8], status: Int) {
        let shaped = response.shaped(envelopeErrors: envelopeErrors)
        return (ResponseWriter.bytes(shaped, close: close, isHEAD: requestIsHEAD), shaped.status)
    }

    static let lingerMs: UInt64 = 2_000

    init(fd: Int32, generation: UInt32, worker: Worker, peer: PeerAddress, snapshot: GatewayState,
         transport: Transport = .plain) {
        self.fd = fd
        self.transport = transport
        self.generation = generation
        self.worker = worker
        self.peer = peer
        self.snapshot = snapshot
    }

    var config: GatewayConfig { snapshot.config }

    // MARK: events

    func handle(_ events: IOEvents) {
        if events.readable { readable() }
        if events.writable, !isClosed { writable() }
        updateInterest()
    }

    private func readable() {
        switch state {
        case .closed:
            return
        case .lingering:
            drainLingering()
            return
        case .tunnel(let u):
            tunnelClientToUpstream(u)
            return
        default:
            break
        }
        if input == nil { input = worker.buffers.take() }
        guard var inp = input else { return }
        if inp.writableBytes == 0 { inp.compact() }
        // A head larger than a small buffer: the buffer grows (once) to hold it whole.
        if inp.writableBytes == 0, case .awaitingHead = state { _ = worker.buffers.enlarge(&inp) }
        guard inp.writableBytes > 0 else { input = inp; return }
        guard let r = transport.read(fd, into: &inp) else {
            input = inp
            abort()
            return
        }
        switch r {
        case .bytes:
            input = inp
            progress()
            processInput()
        case .wouldBlock:
            input = inp
        case .eof:
            input = inp
            peerClosed = true
            peerDidClose()
        }
    }

    private func writable() {
        guard flush() else { abort(); return }
        if outputPending { return }
        // Output drained: things waiting for room can move again.
        switch state {
        case .proxying(let u):
            // Room again toward the client: the upstream may be read again (backpressure).
            u.streamHasRoom()
        case .tunnel(let u):
            tunnelEvent(u, .none)
        case .lingering:
            transport.shutdownWrite(fd)
        default:
            if closeAfterFlush { close(); return }
            processInput()
        }
    }

    /// Parses and handles as many complete requests as the input holds (pipelining: answers
    /// stay in order because a request is taken only when the previous one is finished).
    func processInput() {
        while true {
            switch state {
            case .awaitingHead:
                guard !closeAfterFlush, !answersBacklogged, let inp = input, !inp.isEmpty else {
                    releaseIdleBuffers()
                    return
                }
                if !handleHead() { return }
            case .discardingBody(var discard):
                guard var inp = input, !inp.isEmpty else { return }
                let outcome = discard.drop(from: &inp)
                input = inp
                switch outcome {
                case .needMore:
                    state = .discardingBody(discard)
                    return
                case .refused:
                    // The answer is given; what follows cannot be trusted to frame a request.
                    state = .awaitingHead
                    closeAfterFlush = true
                    enterLingering()
                    return
                case .done:
                    state = .awaitingHead
                    if closeAfterFlush { return }
                    armIdleDeadline()
                }
            case .proxying(let u):
                // Request body bytes arrived: pass them on as far as the upstream takes them.
                u.requestBodyArrived()
                return
            default:
                return
            }
        }
    }

    /// Handles one request head if complete; false when more bytes are needed or the
    /// connection stops taking requests.
    private func handleHead() -> Bool {
        guard let inp = input else { return false }
        let parsed = parseRequestHead(inp.readable, fields: worker.requestFields, limits: snapshot.httpLimits)
        switch parsed {
        case .incomplete:
            if requestStart == 0 { requestStart = worker.loop.now }
            setDeadline(worker.loop.now + UInt64(config.server.headerTimeoutMs), keepIfEarlier: true)
            return false
        case let .error(e):
            let response: GatewayResponse
            switch e {
            case .uriTooLong: response = .uriTooLong
            case .headersTooLarge: response = .headersTooLarge
            case .versionNotSupported: response = .versionNotSupported
            case .notImplemented: response = .notImplemented
            case .badRequest: response = .badRequest
            }
            logLine.reset()
            logLine.method("-")
            requestIsHEAD = false
            envelopeErrors = false
            respondAndClose(response)
            return false
        case let .complete(head):
            snapshot = worker.state
            served += 1
            if requestStart == 0 { requestStart = worker.loop.now }
            return startRequest(head)
        }
    }

    // MARK: local answers

    /// Answers and closes: flush, shut the write side, drain input for a bounded time.
    func respondAndClose(_ response: GatewayResponse) {
        let answer = wire(.error(response), close: true)
        answerAndClose(answer.bytes, status: answer.status)
    }

    /// Queues `bytes` as the last answer and closes, lingering. An answer that cannot be queued
    /// whole (the client has not read earlier ones) is not sent in part: the connection ends.
    private func answerAndClose(_ bytes: [UInt8], status: Int) {
        logLine.status = status
        guard appendOutput(bytes) else {
            writeAccessLog()
            close()
            return
        }
        logLine.bytes = Int64(bytes.count)
        writeAccessLog()
        enterLingering()
    }

    /// Answers the current request. Every answer the gateway gives itself goes through here, so
    /// the request's body is always accounted for before the next request is read: `bodyRead`
    /// says the handler has read the whole (Content-Length) body from the buffer; otherwise a
    /// small body is read and dropped, and a large, chunked or awaited (100-continue) one closes
    /// the connection, lingering, after the answer.
    func respond(_ response: LocalResponse, head: RequestHead, bodyRead: Bool = false) {
        // A chunked body is never read whole by a handler.
        let bodyRead = bodyRead && !head.chunked
        let unread: BodyFraming
        if bodyRead {
            unread = .none
        } else if head.chunked {
            unread = .chunked(ChunkedDecoder())
        } else if let length = head.contentLength, length > 0 {
            unread = .length(length)
        } else {
            unread = .none
        }
        if case .none = unread {} else {
            // A client waiting for 100 Continue may never send the body it announced.
            let canKeep = keepAlive && !head.expectContinue
                && (head.chunked || (head.contentLength ?? 0) <= Self.maxDiscardedBody)
            guard canKeep else {
                let answer = wire(response, close: true)
                answerAndClose(answer.bytes, status: answer.status)
                return
            }
        }
        let answer = wire(response, close: false)
        guard appendOutput(answer.bytes) else { respondAndClose(.internalError); return }
        logLine.status = answer.status
        logLine.bytes = Int64(answer.bytes.count)
        consumeInput(head.headLength + (bodyRead ? Int(head.contentLength ?? 0) : 0))
        finishLocalRequest()
        if case .none = unread {} else { discardBody(BodyDiscard(unread, limit: Self.maxDiscardedBody)) }
    }

    /// The most body bytes read and dropped after an answer to keep the connection.
    static let maxDiscardedBody: Int64 = 65_536

    /// Reads and drops the rest of an answered request's body, within the body timeout; the
    /// next request is parsed only after it.
    func discardBody(_ discard: BodyDiscard) {
        guard isAwaitingHead else { return }
        state = .discardingBody(discard)
        setDeadline(worker.loop.now + UInt64(config.server.bodyTimeoutMs), keepIfEarlier: false)
    }

    func finishLocalRequest() {
        writeAccessLog()
        requestStart = 0
        if !keepAlive || worker.draining { closeAfterFlush = true }
        _ = flush()
        if closeAfterFlush && !outputPending { close(); return }
        armIdleDeadline()
    }

    func enterLingering() {
        if case .proxying(let u) = state { u.pool.close(u) }
        if case .tunnel(let u) = state { u.pool.close(u) }
        state = .lingering
        closeAfterFlush = true
        if var inp = input { inp.readerIndex = 0; inp.writerIndex = 0; input = inp }
        if flush() && !outputPending { transport.shutdownWrite(fd) }
        setDeadline(worker.loop.now + Self.lingerMs, keepIfEarlier: false)
    }

    private func drainLingering() {
        if !transport.discardInput(fd, scratch: &input) { close() }
    }

    // MARK: output

    /// Queues `bytes` whole for the client; false when they do not fit beside what is queued.
    @inline(__always)
    func appendOutput(_ bytes: [UInt8]) -> Bool {
        if output == nil { output = worker.buffers.take() }
        if output!.writableBytes < bytes.count { output!.compact() }
        if output!.writableBytes < bytes.count { _ = worker.buffers.enlarge(&output!) }
        return output!.append(bytes)
    }

    /// Writes as much of `output` as the socket takes; false on a write error.
    @inline(__always)
    func flush() -> Bool {
        guard var out = output, !out.isEmpty else { return transport.sendPending(fd) }
        defer { output = out }
        guard let written = transport.write(fd, from: &out) else { return false }
        if written > 0 { progress() }
        return true
    }

    /// Requests are taken only while less than this much of earlier answers waits: a client
    /// that pipelines without reading is not read until it has read them (backpressure), and
    /// an answer the gateway gives itself always has room.
    static let answerBacklogLimit = 16_384

    var answersBacklogged: Bool { (output?.readableBytes ?? 0) >= Self.answerBacklogLimit }

    /// Answer bytes not yet on the wire, in `output` or below it in the transport.
    var outputPending: Bool { !(output?.isEmpty ?? true) || transport.hasPendingOutput }

    @inline(__always)
    func consumeInput(_ n: Int) {
        input?.consume(n)
    }

    /// Gives idle buffers back to the pool: an idle connection holds none.
    func releaseIdleBuffers() {
        if let b = input, b.isEmpty { worker.buffers.release(b); input = nil }
        if let b = output, b.isEmpty { worker.buffers.release(b); output = nil }
    }

    /// Shutdown: an idle connection closes now, a busy one after its current answer.
    func drain() {
        keepAlive = false
        switch state {
        case .awaitingHead:
            if input?.isEmpty ?? true { close() } else { closeAfterFlush = true }
        default:
            break
        }
    }

    // MARK: interest, deadlines, closing

    func updateInterest() {
        var rounds = 0
        while true {
            if case .closed = state { return }
            let interest = self.interest()
            // Bytes already read below the buffer (a TLS record decrypted in part) get no
            // readiness event of their own: take them now.
            if interest.contains(.read) && rounds < 16 && transport.hasBufferedInput {
                if case .lingering = state {} else {
                    rounds += 1
                    readable()
                    continue
                }
            }
            do {
                try worker.loop.setInterest(fd, interest)
            } catch {
                worker.logEvent("client connection from \(peer.text) closed: \(error)")
                abort()
            }
            return
        }
    }

    private func interest() -> Interest {
        var interest: Interest = []
        switch state {
        case .awaitingHead:
            // A full buffer is never read into (it would spin): the parser has a verdict for any
            // head that fills it, so it is full only while earlier answers wait to be flushed.
            // Nor is a client read while its earlier answers wait (backpressure).
            if !answersBacklogged && (input.map({ $0.writableBytes > 0 || $0.readerIndex > 0 || $0.capacity < worker.buffers.largeSize }) ?? true) {
                interest = .read
            }
        case .discardingBody, .lingering:
            interest = .read
        case .pending:
            if (input?.writableBytes ?? 1) > 0 { interest = .read }
        case .proxying(let u):
            if !u.exchange.requestComplete ? (u.output?.writableBytes ?? 1) > 64 : (input?.writableBytes ?? 1) > 0 { interest = .read }
        case .tunnel(let u):
            if (u.output?.writableBytes ?? 1) > 0 { interest = .read }
        case .closed:
            return []
        }
        if outputPending { interest.insert(.write) }
        if peerClosed { interest.remove(.read) }
        return interest
    }

    var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// Moves the deadline; the heap gets a new entry only when it moves earlier.
    func setDeadline(_ time: UInt64, keepIfEarlier: Bool) {
        if keepIfEarlier && deadline > worker.loop.now && deadline <= time { return }
        deadline = time
        if timerAt == 0 || time < timerAt {
            timerAt = time
            worker.loop.schedule(at: time, fd: fd, generation: generation)
        }
    }

    func armIdleDeadline() {
        let t = served == 0 ? config.server.headerTimeoutMs : config.server.idleTimeoutMs
        setDeadline(worker.loop.now + UInt64(t), keepIfEarlier: false)
    }

    /// Progress on the wire pushes the body/idle deadline out (slow but moving is fine).
    @inline(__always)
    func progress() {
        switch state {
        case .proxying(let u):
            let t = u.exchange.awaitsAnswerHead ? config.server.responseTimeoutMs : config.server.bodyTimeoutMs
            deadline = worker.loop.now + UInt64(t)
        case .tunnel:
            deadline = worker.loop.now + UInt64(config.server.idleTimeoutMs)
        case .awaitingHead where answersBacklogged:
            // The client reads its answers, slowly: it has idle_timeout between reads.
            deadline = worker.loop.now + UInt64(config.server.idleTimeoutMs)
        default:
            break
        }
    }

    /// The timer entry at `timerAt` came due.
    func timerFired(now: UInt64) {
        timerAt = 0
        if case .closed = state { return }
        if now < deadline {
            timerAt = deadline
            worker.loop.schedule(at: deadline, fd: fd, generation: generation)
            return
        }
        switch state {
        case .awaitingHead:
            if answersBacklogged {
                // The client stopped reading its answers for idle_timeout: nothing to say.
                close()
            } else if let inp = input, !inp.isEmpty {
                // A head that does not complete in time (slowloris): cut.
                logLine.reset()
                logLine.method("-")
                respondAndClose(.badRequest)
            } else {
                close()
            }
        case .discardingBody, .lingering, .closed, .tunnel:
            close()
        case .proxying(let u):
            u.exchangeTimedOut()
        case .pending:
            pendingTimerFired()
        }
    }

    private func peerDidClose() {
        switch state {
        case .proxying(let u):
            if !u.exchange.requestComplete {
                u.pool.close(u)
                close()
            } else {
                keepAlive = false
            }
        case .tunnel(let u):
            // Pass the half-close on; the tunnel ends when the upstream closes too.
            Socket.shutdownWrite(u.fd)
        default:
            close()
        }
    }

    /// Ends the connection at once (errors, resets).
    func abort() {
        if case .proxying(let u) = state { u.pool.close(u) }
        if case .tunnel(let u) = state { u.pool.close(u) }
        close()
    }

    func close() {
        if case .closed = state { return }
        if case .proxying(let u) = state { u.pool.close(u) }
        if case .tunnel(let u) = state { u.pool.close(u) }
        state = .closed
        if let b = input { worker.buffers.release(b); input = nil }
        if let b = output { worker.buffers.release(b); output = nil }
        worker.loop.unregister(fd)
        Syscall.close(fd)
        worker.connectionClosed(self)
    }

    // MARK: access log

    func writeAccessLog() {
        guard config.log.access else { logLine.reset(); return }
        let ms = requestStart == 0 ? 0 : Int64(worker.loop.now - requestStart)
        worker.logAccess(&logLine, peer: peer, durationMs: ms)
        logLine.reset()
    }
}
