/// An answer the gateway gives itself, as a value. Endpoint handlers return it and never write
/// wire bytes; `ResponseWriter` formats it for the protocol the request came in on.
enum LocalResponse {
    /// 200 with a JSON body.
    case json([UInt8])
    /// 204, no body.
    case noContent
    /// `{"code","message","details":[detail]}`, datarhei Core's error shape (the envelope form of
    /// the same error on a route with `errors = "envelope"`); `detail` nil: the default text.
    case error(GatewayResponse, detail: String? = nil, retryAfter: Int? = nil)
    /// The envelope profile's `{"code","error","desc"}`.
    case envelope(EnvelopeError, retryAfter: Int? = nil)
    /// `GET /healthz`.
    case healthy
    /// `GET /readyz` while every upstream accepts connections.
    case ready

    /// The answer as a route with `errors = "envelope"` gives it: a `.error` in the envelope
    /// profile's shape (and its status: 414 and 431 become 400 `invalid_request`, 503 is 502).
    func shaped(envelopeErrors: Bool) -> LocalResponse {
        guard envelopeErrors, case let .error(e, _, retryAfter) = self else { return self }
        return .envelope(EnvelopeError(e), retryAfter: retryAfter)
    }

    var status: Int {
        switch self {
        case .json, .healthy, .ready: return 200
        case .noContent: return 204
        case let .error(e, _, _): return e.status
        case let .envelope(e, _): return e.status.0
        }
    }
}

/// What an endpoint handler decided about a request.
enum EndpointOutcome {
    /// Answer now. `bodyRead`: the handler has read the whole (Content-Length) body; otherwise
    /// the connection accounts for it (reads and drops it, or closes).
    case respond(LocalResponse, bodyRead: Bool = false)
    /// Answer and close: the request's body cannot be accounted for (too large, chunked where a
    /// small JSON body is expected).
    case respondAndClose(GatewayResponse)
    /// The (small) body is not all in yet: the head is handled again when more arrives (after a
    /// `100 Continue` when the client waits for one).
    case awaitBody
    /// The answer waits for work off the loop.
    case deferred(DeferredAnswer)
}

/// Work an answer waits for, done on the blocking pool (a password hash, an fsync of the
/// revocation journal); `finish` turns its outcome into the answer, on the connection's loop.
struct DeferredAnswer {
    /// Request bytes (head and body) the handler has read; it must be the whole request.
    let consumed: Int
    /// Where `job` runs: nil for the blocking pool; the identity providers' own thread for a
    /// sign-in that may wait on a provider.
    var pool: BlockingPool? = nil
    let job: @Sendable () -> Bool
    /// The answer, and how long to hold it back (the failed-login delay).
    let finish: (Bool) -> (response: LocalResponse, delayMs: UInt64)
    /// The blocking pool's queue is full: the answer instead (the handler undoes what it must).
    let unavailable: () -> LocalResponse

    /// The longest a deferred answer may take before it is answered 503.
    static let timeoutMs: UInt64 = 30_000
}
