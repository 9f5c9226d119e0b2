import CGatewayShims
import Glibc
import TokenCore

/// One HTTP/1.1 client connection, owned by one loop thread: the driver of its state machine
/// (`ClientConnectionState`). It reads request heads, answers what the gateway answers itself, and
/// hands the rest to the proxy as a `ProxyStream` (HTTP1ProxyStream.swift); every decision about
/// the connection's state is the machine's, this class carries out its actions. Its bytes pass
/// through its `transport` (plain or TLS).
///
/// Buffers come from the loop's pool when there are bytes to hold and go back when the connection
/// is idle, so an idle keep-alive connection is this object and nothing else.
final class ClientConnection {
    let socket: Socket
    let generation: UInt32
    unowned let worker: Worker
    let peer: PeerAddress
    var transport: Transport
    /// The connection's state and every transition of it (ClientConnectionState.swift).
    var machine = ClientConnectionState<UpstreamConnection>()
    var input: ByteBuffer?
    var output: ByteBuffer?
    /// The snapshot the current request started with.
    var snapshot: GatewayState
    var deadline: UInt64 = 0
    /// The number of the connection's current wait for a request (accepted, or answered): its
    /// entry in the worker's idle queue.
    var idleTurn: UInt64 = 0
    /// Time of this connection's entry in the loop's timer heap (0: none).
    var timerAt: UInt64 = 0
    /// Access-log fields of the current request (copied: the input buffer moves on).
    var logLine = AccessLogEntry()
    /// The socket call that failed, for the log line of the request it cut short.
    var failure: SystemError?

    /// An answer of the gateway's own in the shape the current route wants, as wire bytes, and
    /// the status it carries.
    func wire(_ response: LocalResponse, close: Bool) -> (bytes: [UInt8], status: Int) {
        let shaped = response.shaped(envelopeErrors: machine.request.envelopeErrors)
        return (ResponseWriter.bytes(shaped, close: close, isHEAD: machine.request.isHEAD), shaped.status)
    }

    static let lingerMs: UInt64 = 2_000

    init(socket: Socket, generation: UInt32, worker: Worker, peer: PeerAddress, snapshot: GatewayState,
         transport: Transport = .plain) {
        self.socket = socket
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
        if events.writable, !machine.isClosed { writable() }
        updateInterest()
    }

    private func readable() {
        switch machine.state {
        case .closed:
            return
        case .lingering:
            drainLingering()
            return
        case let .tunnel(u, _):
            tunnelClientToUpstream(u)
            return
        default:
            break
        }
        if input == nil { input = worker.buffers.take() }
        if input!.writableBytes == 0 { input!.compact() }
        // A head larger than a small buffer: the buffer grows (once) to hold it whole.
        if input!.writableBytes == 0, machine.isAwaitingHead { _ = worker.buffers.enlarge(&input!) }
        guard input!.writableBytes > 0 else { return }
        switch read() {
        case nil:
            abort("client_read_failed")
        case .bytes?:
            progress()
            processInput()
        case .wouldBlock?:
            break
        case .eof?:
            peerDidClose()
        }
    }

    private func writable() {
        guard flush() else { abort("client_write_failed"); return }
        if outputPending { return }
        // Output drained: things waiting for room can move again.
        switch machine.outputDrained() {
        case let .exchangeHasRoom(u): u.streamHasRoom()
        case let .tunnelMoves(u): tunnelEvent(u, .none)
        case .shutdownWrite: transport.shutdownWrite(socket)
        case .close: close()
        case .readNext: processInput()
        }
    }

    /// Parses and handles as many complete requests as the input holds (pipelining: answers
    /// stay in order because a request is taken only when the previous one is finished).
    func processInput() {
        while true {
            switch machine.state {
            case .awaitingHead:
                guard machine.takesNextRequest(inputEmpty: input?.isEmpty ?? true, answersBacklogged: answersBacklogged) else {
                    releaseIdleBuffers()
                    return
                }
                if !handleHead() { return }
            case .discardingBody(var discard):
                guard !(input?.isEmpty ?? true) else { return }
                let outcome = discard.drop(from: &input!)
                switch machine.bodyDropped(discard, outcome) {
                case .needMore:
                    return
                case .linger:
                    enterLingering()
                    return
                case .closeWhenFlushed:
                    if !outputPending { close() }
                    return
                case .next:
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
        if machine.served == 0 && worker.state.config.server.http2 {
            switch HTTP2Preface.match(inp.readable) {
            case .partial:
                machine.headStarted(now: worker.loop.now)
                setDeadline(worker.loop.now + UInt64(config.server.headerTimeoutMs), keepIfEarlier: true)
                return false
            case .whole:
                worker.adoptHTTP2(self)
                return false
            case .none:
                break
            }
        }
        let parsed = parseRequestHead(inp.readable, fields: worker.requestFields, limits: snapshot.httpLimits)
        switch parsed {
        case .incomplete:
            machine.headStarted(now: worker.loop.now)
            setDeadline(worker.loop.now + UInt64(config.server.headerTimeoutMs), keepIfEarlier: true)
            return false
        case let .error(e):
            let response = GatewayResponse(parseError: e)
            logLine.reset()
            logLine.method("-")
            machine.requestBegins(keepAlive: false, isHEAD: false, speaks11: false, draining: worker.draining, now: worker.loop.now)
            respondAndClose(response)
            return false
        case let .complete(head):
            snapshot = worker.state
            failure = nil
            machine.requestBegins(keepAlive: head.keepAlive, isHEAD: head.isHEAD, speaks11: head.version == .http11,
                                  draining: worker.draining, now: worker.loop.now)
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
        let unread = machine.unreadBody(of: head, bodyRead: bodyRead, maxDiscard: Self.maxDiscardedBody)
        if case .closeAfterAnswer = unread {
            let answer = wire(response, close: true)
            answerAndClose(answer.bytes, status: answer.status)
            return
        }
        let answer = wire(response, close: answerEndsConnection)
        guard appendOutput(answer.bytes) else { respondAndClose(.internalError); return }
        logLine.status = answer.status
        logLine.bytes = Int64(answer.bytes.count)
        consumeInput(head.headLength + (bodyRead && !head.chunked ? Int(head.contentLength ?? 0) : 0))
        finishLocalRequest()
        if case let .discard(discard) = unread { discardBody(discard) }
    }

    /// The answer being written is the connection's last (the client asked to close, or the
    /// worker drains): it says `Connection: close`.
    var answerEndsConnection: Bool { !machine.request.keepAlive || worker.closesAfterAnswers }

    /// The most body bytes read and dropped after an answer to keep the connection.
    static let maxDiscardedBody: Int64 = 65_536

    /// Reads and drops the rest of an answered request's body, within the body timeout; the
    /// next request is parsed only after it.
    func discardBody(_ discard: BodyDiscard) {
        guard machine.discardBegins(discard) else { return }
        setDeadline(worker.loop.now + UInt64(config.server.bodyTimeoutMs), keepIfEarlier: false)
    }

    func finishLocalRequest() {
        writeAccessLog()
        let closing = machine.requestAnswered(draining: worker.closesAfterAnswers)
        _ = flush()
        if closing && !outputPending { close(); return }
        armIdleDeadline()
    }

    func enterLingering() {
        if let u = machine.lingers() { u.pool.close(u) }
        input?.clear()
        if flush() && !outputPending { transport.shutdownWrite(socket) }
        setDeadline(worker.loop.now + Self.lingerMs, keepIfEarlier: false)
    }

    private func drainLingering() {
        if !transport.discardInput(socket, scratch: &input) { close() }
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

    /// Reads once into `input`; nil on an error (kept in `failure`).
    func read() -> IOResult? {
        do {
            return try transport.read(socket, into: &input!)
        } catch {
            failure = error
            return nil
        }
    }

    /// Writes as much of `output` as the socket takes; false on a write error.
    @inline(__always)
    func flush() -> Bool {
        guard !(output?.isEmpty ?? true) else { return transport.sendPending(socket) }
        do {
            if try transport.write(socket, from: &output!) > 0 { progress() }
            return true
        } catch {
            failure = error
            return false
        }
    }

    /// Requests are taken only while less than this much of earlier answers waits: a client
    /// that pipelines without reading is not read until it has read them (backpressure), and
    /// an answer the gateway gives itself (any but a large about object) fits beside them in a
    /// small buffer, which therefore never grows for them.
    static let answerBacklogLimit = HTTPLimits.bufferBytes / 2

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
        if machine.drain(inputEmpty: input?.isEmpty ?? true, outputPending: outputPending) == .close { close() }
    }

    /// A takeover: its next answer says `Connection: close`; nothing is cut before. (The status
    /// in the log line is set exactly when an answer's head is written.)
    func lastAnswerNext() { machine.lastAnswerNext(headWritten: logLine.status != 0) }

    // MARK: interest, deadlines, closing

    func updateInterest() {
        var rounds = 0
        while true {
            if machine.isClosed { return }
            let interest = self.interest()
            // Bytes already read below the buffer (a TLS record decrypted in part) get no
            // readiness event of their own: take them now.
            if interest.contains(.read) && rounds < 16 && transport.hasBufferedInput {
                if case .lingering = machine.state {} else {
                    rounds += 1
                    readable()
                    continue
                }
            }
            do {
                try worker.loop.setInterest(socket, interest)
            } catch {
                worker.logEvent("client connection from \(peer.text) closed: \(error)")
                failure = error
                abort("epoll_failed")
            }
            return
        }
    }

    private func interest() -> Interest {
        // A full buffer is never read into (it would spin). Waiting for a head, the buffer may
        // still be compacted or grown: the parser has a verdict for any head that fills a large
        // one, so it is full only while earlier answers wait to be flushed.
        let awaiting = machine.isAwaitingHead
        let inputHasRoom = input.map { $0.writableBytes > 0 || (awaiting && ($0.readerIndex > 0 || $0.capacity < worker.buffers.largeSize)) } ?? true
        var requestSent = true, upstreamHasRoom = true
        switch machine.state {
        case let .proxying(u):
            requestSent = u.exchange.requestComplete
            upstreamHasRoom = (u.output?.writableBytes ?? 1) > 64
        case let .tunnel(u, _):
            upstreamHasRoom = (u.output?.writableBytes ?? 1) > 0
        default:
            break
        }
        return machine.interest(inputHasRoom: inputHasRoom, outputPending: outputPending, answersBacklogged: answersBacklogged,
                                requestSent: requestSent, upstreamHasRoom: upstreamHasRoom)
    }

    private func peerDidClose() {
        let requestSent: Bool
        if case let .proxying(u) = machine.state { requestSent = u.exchange.requestComplete } else { requestSent = true }
        switch machine.peerDidClose(requestSent: requestSent) {
        case .close, .closeExchangeAndClose:
            // A request cut short (its body unsent, its answer pending) is logged as such.
            abort("client_closed")
        case let .shutdownUpstreamWrite(u):
            u.shutdownWrite()
        case .finishAnswer:
            break
        }
    }

    /// Ends the connection at once (errors, resets). A request cut short gets its access-log line
    /// here, saying why (`closed=`, with the errno of the failed call).
    func abort(_ why: StaticString) {
        switch machine.state {
        case .proxying, .pending:
            logLine.closed = why
            logLine.closedErrno = failure?.errno ?? 0
            writeAccessLog()
        default:
            break
        }
        close()
    }

    func close() {
        guard !machine.isClosed else { return }
        if let u = machine.closes() { u.pool.close(u) }
        if let b = input { worker.buffers.release(b); input = nil }
        if let b = output { worker.buffers.release(b); output = nil }
        worker.loop.close(socket)
        worker.connectionClosed()
    }

    // MARK: access log

    func writeAccessLog() {
        let ms = machine.request.start == 0 ? 0 : Int64(worker.loop.now - machine.request.start)
        worker.requestEnded(&logLine, peer: peer, durationMs: ms, logged: config.log.access)
        logLine.reset()
    }
}
