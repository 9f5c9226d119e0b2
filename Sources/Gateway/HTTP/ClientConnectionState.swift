/// A client connection's state as a value, after async-http-client's
/// `HTTP1ConnectionStateMachine`: every transition is a method here that changes the value and
/// returns what the connection must do (an action), so the whole lifecycle reads in one file and
/// is unit-tested without a socket (ClientConnectionStateTests). `ClientConnection` is the
/// driver: it reads and writes bytes, feeds events in, and carries actions out.
///
/// Generic over the upstream handle so tests need no upstream connection.
struct ClientConnectionState<Upstream> {
    enum State {
        /// Waiting for (the rest of) a request head.
        case awaitingHead
        /// A request is answered (by the gateway, or early by the upstream) and the rest of its
        /// body is read and dropped.
        case discardingBody(BodyDiscard)
        /// A request is with the upstream; its answer is relayed.
        case proxying(Upstream)
        /// The gateway's own answer waits for work off the loop (a password check, an fsync)
        /// or for its delay (a failed login).
        case pending(Pending)
        /// A WebSocket (or other upgrade) tunnel: bytes both ways, unparsed.
        case tunnel(Upstream, TunnelIdentity?)
        /// After an error: the answer is flushed, the write side shut, input read and dropped
        /// until the peer closes or the linger time ends (RFC 9112 9.6).
        case lingering
        case closed
    }

    /// A pending answer: the work's ticket (a result for another ticket is stale and dropped)
    /// and, once the work is done, the answer held back for its delay.
    struct Pending {
        var ticket: UInt64
        /// The work's continuation, until its result comes back.
        var work: DeferredAnswer?
        var answer: LocalResponse?
    }

    private(set) var state: State = .awaitingHead
    var request = RequestState()
    /// Close once the output is flushed (no keep-alive, draining, an answer that ends it).
    private(set) var closeAfterFlush = false
    /// The connection was asked to go (shutdown, or shed at `max_connections`): the request it
    /// is reading or serving is its last, answered with `Connection: close`.
    private(set) var lastRequest = false
    /// The client closed its side (read returned 0).
    private(set) var peerClosed = false
    /// Requests served; the first waits under the header timeout, later ones the idle timeout.
    private(set) var served = 0
    private var lastTicket: UInt64 = 0

    var isClosed: Bool { if case .closed = state { return true } else { return false } }
    var isAwaitingHead: Bool { if case .awaitingHead = state { return true } else { return false } }

    /// The request was answered at once: input goes on being read (the rest of its body to
    /// drop, or the next request).
    var readsNextInput: Bool {
        switch state {
        case .awaitingHead, .discardingBody: return true
        default: return false
        }
    }

    /// The connection's first bytes are HTTP/2's client preface: an HTTP/2 connection takes over
    /// its socket and bytes, and this machine is done. False once a request has been served.
    mutating func becomesHTTP2() -> Bool {
        guard served == 0, isAwaitingHead else { return false }
        state = .closed
        return true
    }

    // MARK: a request

    /// The first byte of a request was seen at `now` (its head may take several reads).
    mutating func headStarted(now: UInt64) {
        if request.start == 0 { request.start = now }
    }

    /// A complete head was parsed (again, while a small body is awaited: what was sent for it
    /// carries over).
    mutating func requestBegins(keepAlive: Bool, isHEAD: Bool, speaks11: Bool, draining: Bool, now: UInt64) {
        served += 1
        let carried = request
        request = RequestState(keepAlive: keepAlive && !draining && !lastRequest, isHEAD: isHEAD, speaks11: speaks11)
        request.start = carried.start == 0 ? now : carried.start
        request.sentContinue = carried.sentContinue
    }

    /// Whether the next pipelined request may be taken now: one is waiting, the connection is not
    /// closing, and less than the backlog limit of earlier answers waits to be read
    /// (backpressure: answers stay in order and a client that does not read is not read).
    func takesNextRequest(inputEmpty: Bool, answersBacklogged: Bool) -> Bool {
        isAwaitingHead && !closeAfterFlush && !answersBacklogged && !inputEmpty
    }

    /// A request whose small body the gateway awaits: true when `100 Continue` must be sent now
    /// (the client waits for it; it is sent once however often the head is handled again).
    mutating func continueNeeded(expectContinue: Bool) -> Bool {
        guard expectContinue && !request.sentContinue else { return false }
        request.sentContinue = true
        return true
    }

    /// What happens to a request body the gateway's own answer leaves unread.
    enum UnreadBody {
        /// None is left: the next request follows.
        case none
        /// Small or chunked: read and dropped (within the limit) before the next request.
        case discard(BodyDiscard)
        /// Too large, or never coming (a client waiting for 100 Continue): the answer ends
        /// the connection.
        case closeAfterAnswer
    }

    /// Decides about the body of a request answered by the gateway itself. `bodyRead`: the
    /// handler read the whole Content-Length body.
    func unreadBody(of head: RequestHead, bodyRead: Bool, maxDiscard: Int64) -> UnreadBody {
        let framing: BodyFraming
        if head.chunked {
            framing = .chunked(ChunkedDecoder())  // never read whole by a handler
        } else if !bodyRead, let length = head.contentLength, length > 0 {
            framing = .length(length)
        } else {
            return .none
        }
        // A client waiting for 100 Continue may never send the body it announced.
        guard request.keepAlive && !head.expectContinue && (head.chunked || (head.contentLength ?? 0) <= maxDiscard) else {
            return .closeAfterAnswer
        }
        return .discard(BodyDiscard(framing, limit: maxDiscard))
    }

    /// The answer to the request is queued whole; true when the connection closes once it is
    /// flushed.
    mutating func requestAnswered(draining: Bool) -> Bool {
        request.start = 0
        if !request.keepAlive || draining { closeAfterFlush = true }
        return closeAfterFlush
    }

    /// Starts dropping the rest of an answered request's body.
    mutating func discardBegins(_ discard: BodyDiscard) -> Bool {
        guard isAwaitingHead else { return false }
        state = .discardingBody(discard)
        return true
    }

    enum DiscardAction {
        case needMore
        /// The body ended: the next request follows.
        case next
        /// The body ended and the connection closes once its answers are flushed.
        case closeWhenFlushed
        /// The body broke its framing or limit: the connection ends, lingering.
        case linger
    }

    /// Body bytes were dropped with `outcome`.
    mutating func bodyDropped(_ discard: BodyDiscard, _ outcome: BodyDiscard.Outcome) -> DiscardAction {
        switch outcome {
        case .needMore:
            state = .discardingBody(discard)
            return .needMore
        case .refused:
            // The answer is given; what follows cannot be trusted to frame a request.
            state = .awaitingHead
            closeAfterFlush = true
            return .linger
        case .done:
            state = .awaitingHead
            return closeAfterFlush ? .closeWhenFlushed : .next
        }
    }

    // MARK: the proxy

    mutating func proxyingBegins(_ upstream: Upstream) { state = .proxying(upstream) }

    /// The one retry moved the exchange to a fresh upstream connection.
    mutating func exchangeMoved(to upstream: Upstream) { state = .proxying(upstream) }

    mutating func tunnelBegins(_ upstream: Upstream) { state = .tunnel(upstream, request.tunnelIdentity) }

    /// The answer chose its framing toward the client; `keepAlive` false when the answer must
    /// end the connection (a body of unknown length to an HTTP/1.0 client).
    mutating func answerHeadWritten(chunked: Bool, keepAlive: Bool) {
        request.responseChunked = chunked
        request.keepAlive = keepAlive
    }

    enum FinishAction {
        /// Flushed: close now.
        case close
        /// Close once the output is flushed.
        case closeWhenFlushed
        /// The client may still be sending a body the upstream did not wait for: it reads the
        /// answer before the close.
        case linger
        /// Keep the connection: drop the rest of the body if any, then the next request.
        case next(discard: BodyDiscard?)
    }

    /// The upstream's answer was relayed whole. `unsentBody`: the request body the upstream did
    /// not wait for.
    mutating func exchangeFinished(unsentBody: BodyDiscard?, draining: Bool, outputPending: Bool) -> FinishAction {
        state = .awaitingHead
        request.start = 0
        if !request.keepAlive || peerClosed || draining { closeAfterFlush = true }
        guard closeAfterFlush else { return .next(discard: unsentBody) }
        if unsentBody != nil { return .linger }
        return outputPending ? .closeWhenFlushed : .close
    }

    /// The exchange failed before its answer began; true when the gateway's error can be
    /// answered on a connection that stays (the request was read whole).
    mutating func exchangeFailed(requestComplete: Bool) -> Bool {
        state = .awaitingHead
        return requestComplete && request.keepAlive && !peerClosed
    }

    // MARK: pending answers

    /// `work` for the answer is handed off the loop; its ticket.
    mutating func pendingBegins(_ work: DeferredAnswer) -> UInt64 {
        lastTicket &+= 1
        state = .pending(Pending(ticket: lastTicket, work: work, answer: nil))
        return lastTicket
    }

    /// The work of `ticket` came back: its continuation when it belongs to the request still
    /// pending, nil when that request was answered already (the result is stale).
    mutating func workDone(ticket: UInt64) -> DeferredAnswer? {
        guard case var .pending(p) = state, p.ticket == ticket, let work = p.work else { return nil }
        p.work = nil
        state = .pending(p)
        return work
    }

    /// The answer is ready but held back until the timer fires.
    mutating func holdAnswer(_ answer: LocalResponse) {
        guard case var .pending(p) = state else { return }
        p.answer = answer
        state = .pending(p)
    }

    /// The pending request gets its answer now; what it is (503 when the work did not end in time).
    mutating func pendingAnswered(_ answer: LocalResponse? = nil) -> LocalResponse {
        var given = answer ?? .error(.serviceUnavailable)
        if answer == nil, case let .pending(p) = state, let held = p.answer { given = held }
        state = .awaitingHead
        return given
    }

    // MARK: events of the wire

    enum TimerAction {
        /// Nothing to say: the connection just ends.
        case close
        /// A head that did not complete in time (slowloris): 400, then the connection ends.
        case cutSlowHead
        case exchangeTimedOut(Upstream)
        case pendingDue
    }

    /// The connection's deadline passed. `answersBacklogged`: the client has not read its answers.
    func timerFired(answersBacklogged: Bool, partialHead: Bool) -> TimerAction {
        switch state {
        case .awaitingHead:
            // A client that stopped reading its answers for idle_timeout: nothing to say; after
            // an answer that ends the connection, no more answers (pipelined bytes are not read).
            if answersBacklogged || closeAfterFlush { return .close }
            return partialHead ? .cutSlowHead : .close
        case .discardingBody, .lingering, .closed, .tunnel:
            return .close
        case let .proxying(u):
            return .exchangeTimedOut(u)
        case .pending:
            return .pendingDue
        }
    }

    enum PeerClosedAction {
        case close
        /// The request was cut short: the exchange ends too.
        case closeExchangeAndClose(Upstream)
        /// The half-close passes on to the upstream; the tunnel ends when it closes too.
        case shutdownUpstreamWrite(Upstream)
        /// The answer is still relayed; the connection ends after it.
        case finishAnswer
    }

    /// The client closed its side. `requestSent`: the exchange's request is all upstream.
    mutating func peerDidClose(requestSent: Bool) -> PeerClosedAction {
        peerClosed = true
        switch state {
        case let .proxying(u):
            if !requestSent { return .closeExchangeAndClose(u) }
            request.keepAlive = false
            return .finishAnswer
        case let .tunnel(u, _):
            return .shutdownUpstreamWrite(u)
        default:
            return .close
        }
    }

    enum DrainedAction {
        /// Room toward the client: the upstream may be read again (backpressure).
        case exchangeHasRoom(Upstream)
        case tunnelMoves(Upstream)
        case shutdownWrite
        case close
        /// Take the next pipelined request.
        case readNext
    }

    /// Everything queued for the client was written.
    func outputDrained() -> DrainedAction {
        switch state {
        case let .proxying(u): return .exchangeHasRoom(u)
        case let .tunnel(u, _): return .tunnelMoves(u)
        case .lingering: return .shutdownWrite
        default: return closeAfterFlush ? .close : .readNext
        }
    }

    /// After an error: flush, shut the write side, drop input for a while. The upstream to close,
    /// when one was in use.
    mutating func lingers() -> Upstream? {
        let upstream = self.upstream
        state = .lingering
        closeAfterFlush = true
        return upstream
    }

    /// The connection ends; the upstream to close, when one was in use (nil when closed already).
    mutating func closes() -> Upstream? {
        let upstream = self.upstream
        state = .closed
        return upstream
    }

    /// The upstream connection in use (proxying or tunnelling).
    private var upstream: Upstream? {
        switch state {
        case let .proxying(u), let .tunnel(u, _): return u
        default: return nil
        }
    }

    enum DrainAction { case close, closeWhenFlushed, none }

    /// Asked to go (shutdown, or shed): an idle connection closes now, or once its answer is
    /// written; a busy one after its current answer; one whose next request has begun to
    /// arrive answers it (with `Connection: close`) first.
    mutating func drain(inputEmpty: Bool, outputPending: Bool) -> DrainAction {
        request.keepAlive = false
        lastRequest = true
        if case .discardingBody = state {
            // The answer is given: once the body is dropped, nothing more is read.
            closeAfterFlush = true
            return .none
        }
        guard isAwaitingHead, inputEmpty else { return .none }
        if !outputPending { return .close }
        closeAfterFlush = true
        return .closeWhenFlushed
    }

    /// Its next answer is its last (the process is handing over to a new one), but nothing is
    /// cut now, not even while idle: its client may be sending on it at this moment. An answer
    /// whose head already went out promising keep-alive keeps that promise: the connection then
    /// waits for one more request, and answers it with `Connection: close`.
    mutating func lastAnswerNext(headWritten: Bool) {
        if !headWritten { request.keepAlive = false }
        lastRequest = true
    }

    /// Asked to go already (its last request, or closing once flushed).
    var isGoing: Bool { lastRequest || closeAfterFlush }

    /// Waiting for a request of which nothing has come (the first, or the next on a keep-alive
    /// connection), with nothing left to write. Such a connection may be closed to make room
    /// for a new one at `max_connections` (its client loses nothing).
    func isIdle(inputEmpty: Bool, outputPending: Bool) -> Bool {
        isAwaitingHead && request.start == 0 && inputEmpty && !outputPending && !isGoing && !peerClosed
    }

    /// A request that will not be kept alive (the worker drains): close after its answer.
    mutating func closeWhenFlushed() { closeAfterFlush = true }

    // MARK: what to watch and when to give up

    /// What the connection is watched for. `inputHasRoom`: its input buffer can take more
    /// bytes; `requestSent` and `upstreamHasRoom`: the exchange's request is all upstream, and
    /// its output can take more body.
    func interest(inputHasRoom: Bool, outputPending: Bool, answersBacklogged: Bool,
                  requestSent: Bool, upstreamHasRoom: Bool) -> Interest {
        var interest: Interest = []
        switch state {
        case .awaitingHead:
            // Not read while its earlier answers wait (backpressure).
            if !answersBacklogged && inputHasRoom { interest = .read }
        case .discardingBody, .lingering:
            interest = .read
        case .pending:
            if inputHasRoom { interest = .read }
        case .proxying:
            if requestSent ? inputHasRoom : upstreamHasRoom { interest = .read }
        case .tunnel:
            if upstreamHasRoom { interest = .read }
        case .closed:
            return []
        }
        if outputPending { interest.insert(.write) }
        if peerClosed { interest.remove(.read) }
        return interest
    }

    enum Timeout { case header, idle, body, response }

    /// The timeout that bytes moving on the wire push out, if any (slow but moving is fine).
    func progressTimeout(answersBacklogged: Bool, awaitsAnswerHead: Bool) -> Timeout? {
        switch state {
        case .proxying: return awaitsAnswerHead ? .response : .body
        case .tunnel: return .idle
        // The client reads its answers, slowly: it has idle_timeout between reads.
        case .awaitingHead where answersBacklogged: return .idle
        default: return nil
        }
    }

    /// The wait for the next request: the first under the header timeout, later ones idle.
    var nextRequestTimeout: Timeout { served == 0 ? .header : .idle }
}
