/// One exchange on an upstream connection, as a value: what of the request has been sent, what
/// of the answer has come back, and what that allows. `UpstreamConnection` holds one and
/// replaces it whole when a request begins, so nothing of an earlier exchange survives into the
/// next; the decisions (replay once, reuse the connection, what to wait for) are pure functions
/// of it, unit-tested without a socket (ExchangeStateTests).
struct ExchangeState {
    /// The limits of the snapshot the request started with (for the answer's head).
    var limits = HTTPLimits()

    // MARK: the request

    /// How the rest of the request body is framed; what is left of it.
    var requestBody: BodyFraming = .none
    /// The whole request (head and body) is in the connection's output.
    var requestComplete = false
    /// Body bytes taken from the client so far, against `maxRequestBody`.
    var requestBodyBytes: Int64 = 0
    var maxRequestBody: Int64 = .max
    /// Bytes of the request head at the front of the output, kept until the answer starts so a
    /// bodyless idempotent request can be replayed on a fresh connection (0: not replayable).
    var keptHeadLength = 0
    /// The client asked for a WebSocket upgrade.
    var tunnelRequested = false

    // MARK: the answer

    /// The upstream sent something for this exchange: a replay is no longer safe.
    var gotBytes = false
    /// The upstream closed its side.
    var eof = false
    var responseHeadDone = false
    /// Something of the answer (a head, a 101) reached the client side: a failure now cuts the
    /// client instead of answering it.
    var responseStarted = false
    var responseBody: BodyFraming = .none
    var responseKeepAlive = true
    /// Body bytes of the answer handed to the client side (framing not counted).
    var responseBodyBytes: Int64 = 0
    /// The upstream accepted the upgrade: bytes pass both ways unparsed.
    var tunneling = false

    init() {}

    /// A request whose rewritten head is in the output, its body framed as `body`.
    init(limits: HTTPLimits, body: BodyFraming, maxBody: Int64, tunnel: Bool, keptHeadLength: Int) {
        self.limits = limits
        requestBody = body
        maxRequestBody = maxBody
        tunnelRequested = tunnel
        self.keptHeadLength = keptHeadLength
        if case .none = body { requestComplete = true }
    }

    // MARK: decisions

    /// What the exchange waits for once the request has gone as far as it can.
    func wait(connecting: Bool) -> ExchangeWait {
        connecting ? .connect : (requestComplete ? .response : .body)
    }

    /// While the answer's head has not come (with the request sent), the response timeout runs;
    /// otherwise bytes are moving both ways under the body timeout.
    var awaitsAnswerHead: Bool { requestComplete && !responseHeadDone }

    /// A failure now may be replayed, once, on a fresh connection: the connection came from the
    /// pool (it may have been closed by the upstream while idle), the request is a kept bodyless
    /// idempotent head, and the upstream has sent nothing for it.
    func mayReplay(reused: Bool) -> Bool {
        reused && keptHeadLength > 0 && !gotBytes && !responseStarted
    }

    /// The exchange as it starts over on a fresh connection: the same request, sent whole.
    var replayed: ExchangeState {
        ExchangeState(limits: limits, body: .none, maxBody: maxRequestBody, tunnel: tunnelRequested, keptHeadLength: 0)
    }

    /// The first bytes of the answer arrived; true when the kept request head can go.
    mutating func answerBytesArrived() -> Bool {
        gotBytes = true
        guard keptHeadLength > 0 else { return false }
        keptHeadLength = 0
        return true
    }

    /// Whether the connection may carry another request once this answer is complete: not
    /// after an answer delimited by the close or without a body (HEAD, 204, 304: an upstream
    /// that sends one anyway would have it read as the next client's answer), not with bytes
    /// past the answer or request bytes still unsent (`leftover`), not when the request was not
    /// taken whole (the upstream would read its rest as a request), not when either side said
    /// close.
    func reusable(leftover: Bool) -> Bool {
        guard responseKeepAlive, requestComplete, !eof, !leftover else { return false }
        switch responseBody {
        case .untilClose, .none: return false
        case .length, .chunked: return true
        }
    }

    // MARK: events

    enum AnswerHeadAction: Equatable {
        /// An interim answer (1xx but 101): dropped, the real one follows.
        case skip
        /// 101 to a request that asked to upgrade: from now on a tunnel.
        case upgrade
        /// An answer the gateway cannot pass on (a 101 nobody asked for): 502.
        case refuse
        /// Hand the head to the client side, its body framed as `body` for it.
        case relay(ForwardedResponseHead.Body)
    }

    /// The upstream's answer head was parsed: what to do with it. An upgrade starts the answer here;
    /// a relayed head starts it once the client side has taken it (`answerHeadRelayed`).
    mutating func answerHeadParsed(status: Int, framing: ResponseBody) -> AnswerHeadAction {
        if status >= 100 && status < 200 && status != 101 { return .skip }
        if status == 101 {
            guard tunnelRequested else { return .refuse }
            tunneling = true
            responseStarted = true
            return .upgrade
        }
        switch framing {
        case .none: return .relay(.none)
        case let .contentLength(n): return .relay(.length(n))
        case .chunked, .untilClose: return .relay(.unknown)
        }
    }

    /// The client side took the answer's head: its body follows, de-framed as `framing`.
    mutating func answerHeadRelayed(framing: ResponseBody, keepAlive: Bool) {
        switch framing {
        case .none: responseBody = .none
        case let .contentLength(n): responseBody = .length(n)
        case .chunked: responseBody = .chunked(ChunkedDecoder())
        case .untilClose: responseBody = .untilClose
        }
        responseHeadDone = true
        responseStarted = true
        responseKeepAlive = keepAlive
    }

    enum FailureAction: Equatable {
        /// The answer had begun: the client side is cut.
        case cutClient
        /// Replay the request once on a fresh connection.
        case replay
        /// Answer the client with the gateway's own error.
        case answerError
    }

    /// The upstream connection failed (a reset, a close before the answer, an error).
    func failed(reused: Bool) -> FailureAction {
        if responseStarted { return .cutClient }
        return mayReplay(reused: reused) ? .replay : .answerError
    }

    /// The exchange's deadline passed: cut after the answer began, 504 before.
    var timedOut: FailureAction { responseStarted ? .cutClient : .answerError }

    /// The rest of a request body the upstream answered before it had all been sent: the client
    /// side reads and drops it (never as a request).
    var unsentBody: BodyDiscard? {
        requestComplete ? nil : BodyDiscard(requestBody, alreadySeen: requestBodyBytes, limit: maxRequestBody)
    }
}
