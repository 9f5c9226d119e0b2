/// An HTTP/2 stream's state as a value, as `ClientConnectionState` is an HTTP/1.1 connection's:
/// every transition is a method that changes the value and returns what the stream must do, so a
/// stream's lifecycle reads in one file and is unit-tested without a session or a socket
/// (HTTP2StreamStateTests). `HTTP2Stream` is the driver: it holds the buffers, talks to nghttp2
/// and the upstream, feeds events in and carries actions out.
///
/// Generic over the upstream handle so tests need no upstream connection.
struct HTTP2StreamState<Upstream> {
    enum Phase {
        /// The header block is arriving.
        case headers
        /// One of the gateway's own endpoints, waiting for the rest of its small body.
        case awaitingBody
        /// Forwarded: the exchange runs on this upstream connection.
        case proxying(Upstream)
        /// A handler's work runs on the blocking pool (`ticket`); then its answer, held back
        /// until the deadline when it must wait (the failed-login delay).
        case pending(ticket: UInt64, work: DeferredAnswer?, held: LocalResponse?)
        /// The answer is submitted; its body goes out as the client's window allows.
        case answering
        /// Reset, or closed: nothing more happens.
        case done
    }

    private(set) var phase = Phase.headers
    /// The client ended its side (END_STREAM).
    private(set) var requestComplete = false
    /// All of the answer is buffered for the session (or it has no body).
    private(set) var answerComplete = false
    /// The session's data source found nothing ready: it must be resumed when bytes come.
    private(set) var answerWaiting = false
    /// The answer went out whole before the request did: the stream ends with RST_STREAM
    /// NO_ERROR once the session has sent it (RFC 9113 §8.1).
    private(set) var resetOnceAnswered = false
    /// A WebSocket over this stream (RFC 8441); open once the upstream accepted it.
    private(set) var isTunnel = false
    private(set) var tunnelOpen = false
    /// The client's end of the tunnel was passed on (the upstream's write side shut).
    private(set) var upstreamHalfClosed = false

    var upstream: Upstream? {
        if case let .proxying(u) = phase { return u } else { return nil }
    }

    // MARK: the request

    enum HeadAction {
        /// Not in the header phase (a trailer block): nothing to do.
        case ignore
        /// The header list cannot be taken (too large, or malformed).
        case refuse(HTTP2RequestHead.Failure)
        /// One of the gateway's own endpoints: its small body is gathered first; `sendContinue`
        /// when the client waits for `100 Continue`.
        case gatherBody(sendContinue: Bool)
        /// The head goes on at once, the body (if any) framed as said.
        case dispatch(HTTP2RequestHead.Framing)
    }

    /// The header block ended. `ownEndpoint`: the target is one of the gateway's own endpoints;
    /// `lengthKnown`: the request has a content-length (or, a WebSocket, no body at all).
    mutating func headersEnded(endStream: Bool, failure: HTTP2RequestHead.Failure?, ownEndpoint: Bool,
                               expectsContinue: Bool, lengthKnown: Bool) -> HeadAction {
        guard case .headers = phase else { return .ignore }
        if endStream { requestComplete = true }
        if let failure { return .refuse(failure) }
        if !endStream && ownEndpoint {
            phase = .awaitingBody
            return .gatherBody(sendContinue: expectsContinue)
        }
        return .dispatch(endStream || lengthKnown ? .asSent : .chunked)
    }

    enum DataAction {
        /// Kept for the gateway's own endpoint (a little past its limit at most).
        case gather
        /// Buffered, and the exchange told more body came.
        case forward(Upstream)
        /// Buffered for the tunnel, moved on at once when it is open.
        case tunnel(Upstream, open: Bool)
        /// The stream is answered or reset: dropped, its window given back.
        case drop
    }

    /// What becomes of DATA on this stream.
    func dataArrived() -> DataAction {
        switch phase {
        case .awaitingBody: return .gather
        case let .proxying(u): return isTunnel ? .tunnel(u, open: tunnelOpen) : .forward(u)
        default: return .drop
        }
    }

    enum EndAction {
        /// The own endpoint's body is whole: the request goes on with it.
        case dispatchGathered
        /// The exchange is told the body is complete.
        case bodyComplete(Upstream)
        /// The tunnel passes the client's end on.
        case tunnel(Upstream)
        case none
    }

    /// The client ended its side (END_STREAM after DATA).
    mutating func requestEnded() -> EndAction {
        requestComplete = true
        switch phase {
        case .awaitingBody: return .dispatchGathered
        case let .proxying(u) where isTunnel: return tunnelOpen ? .tunnel(u) : .none
        case let .proxying(u): return .bodyComplete(u)
        default: return .none
        }
    }

    // MARK: the way the request goes

    mutating func proxyingBegins(_ u: Upstream, tunnel: Bool) {
        phase = .proxying(u)
        isTunnel = tunnel
    }

    /// The exchange moved to a fresh upstream connection (the one retry).
    mutating func exchangeMoved(to u: Upstream) {
        if case .proxying = phase { phase = .proxying(u) }
    }

    /// The exchange ended (answered whole, failed or cut): the stream no longer has one.
    mutating func exchangeEnded() {
        if case .proxying = phase { phase = .answering }
    }

    mutating func pendingBegins(ticket: UInt64, work: DeferredAnswer) {
        phase = .pending(ticket: ticket, work: work, held: nil)
    }

    enum WorkAction {
        /// A result for another ticket, or one already taken: dropped.
        case stale
        /// The answer, now.
        case respond(LocalResponse)
        /// The answer, held back this long (the failed-login delay), then given at the timer.
        case hold(delayMs: UInt64)
    }

    /// The pending work of `ticket` came back from the blocking pool.
    mutating func workDone(ticket: UInt64, ok: Bool) -> WorkAction {
        guard case let .pending(t, work?, _) = phase, t == ticket else { return .stale }
        let (response, delayMs) = work.finish(ok)
        guard delayMs > 0 else { return .respond(response) }
        phase = .pending(ticket: t, work: nil, held: response)
        return .hold(delayMs: delayMs)
    }

    // MARK: the answer

    /// The gateway's own answer is submitted whole.
    mutating func answerSubmitted() {
        phase = .answering
        answerComplete = true
    }

    /// All of a forwarded answer is buffered: the upstream sent its last byte, or the head said
    /// there is no body.
    mutating func answerIsWhole() {
        answerComplete = true
    }

    /// True (once) when the session's data source waits to be resumed.
    mutating func takeAnswerWaiting() -> Bool {
        defer { answerWaiting = false }
        return answerWaiting
    }

    enum ReadAction {
        /// Nothing is ready yet: the data source defers until resumed.
        case deferred
        /// Bytes went; `drained`: the exchange reads its upstream on after the session's send.
        case more(drained: Bool)
        /// The answer's last bytes went; `drained`: the stream is woken after the send to reset
        /// the rest of the request.
        case ended(drained: Bool)
    }

    /// The session's data source took `count` bytes; `bufferEmpty`: nothing more is buffered.
    mutating func answerRead(count: Int, bufferEmpty: Bool) -> ReadAction {
        let end = answerComplete && bufferEmpty
        if count == 0 && !end {
            answerWaiting = true
            return .deferred
        }
        if end { return .ended(drained: answered()) }
        if case .proxying = phase { return .more(drained: true) }
        return .more(drained: false)
    }

    /// The answer has gone whole to the session; true when the request is still coming (the
    /// stream is then reset NO_ERROR after the send).
    mutating func answered() -> Bool {
        guard !requestComplete else { return false }
        resetOnceAnswered = true
        return true
    }

    enum RoomAction {
        /// The answer is out and the request was not whole: RST_STREAM NO_ERROR.
        case resetNoError
        /// The tunnel moves bytes again.
        case tunnel(Upstream)
        /// The exchange reads its upstream on.
        case readOn(Upstream)
        case none
    }

    /// After the session's send: room in the answer buffer, or the answer ended.
    mutating func answerHasRoom() -> RoomAction {
        if resetOnceAnswered {
            resetOnceAnswered = false
            return .resetNoError
        }
        guard case let .proxying(u) = phase else { return .none }
        return tunnelOpen ? .tunnel(u) : .readOn(u)
    }

    // MARK: the tunnel

    /// The upstream answered the upgrade: bytes pass both ways.
    mutating func tunnelAccepted() {
        tunnelOpen = true
    }

    /// True (once) when the client's end must be passed on to the upstream: the client ended its
    /// side and every byte it sent has gone up.
    mutating func halfClosesUpstream(clientBytesPending: Bool) -> Bool {
        guard requestComplete && !clientBytesPending && !upstreamHalfClosed else { return false }
        upstreamHalfClosed = true
        return true
    }

    // MARK: time, ending

    enum TimerAction {
        /// The held answer (or 503: the work never came back in time).
        case respond(LocalResponse)
        case exchangeTimedOut(Upstream)
        /// Waiting for the client (its head, its body, reading its answer) too long: CANCEL.
        case cancel
        case none
    }

    func timerFired() -> TimerAction {
        switch phase {
        case let .pending(_, _, held): return .respond(held ?? .error(.serviceUnavailable))
        case let .proxying(u): return .exchangeTimedOut(u)
        case .headers, .awaitingBody, .answering: return .cancel
        case .done: return .none
        }
    }

    /// The gateway resets the stream; the exchange to close, if any.
    mutating func reset() -> Upstream? {
        defer { phase = .done }
        return upstream
    }

    /// nghttp2 closed the stream (`byError`: with an error code, which only a reset carries);
    /// the exchange to close, if any, and whether the client cut the stream short.
    mutating func closed(byError: Bool) -> (close: Upstream?, cutByClient: Bool) {
        defer { phase = .done }
        if let u = upstream { return (u, true) }
        if case .answering = phase { return (nil, byError) }
        return (nil, false)
    }

    /// The connection ends with the stream open: the exchange to close, if any.
    mutating func connectionEnds() -> Upstream? {
        defer { phase = .done }
        return upstream
    }
}
