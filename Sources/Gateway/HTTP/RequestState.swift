/// What a client connection knows about the request it serves. Set whole when the request's head
/// is handled (`ClientConnectionState.requestBegins`).
struct RequestState {
    /// The client asked for keep-alive, and the worker is not draining.
    var keepAlive = true
    var isHEAD = false
    /// HTTP/1.1: chunked framing may be used toward the client.
    var speaks11 = false
    /// The gateway's own errors take the envelope shape (the route says so).
    var envelopeErrors = false
    /// The answer's body goes out with chunked framing (decided with the answer's head).
    var responseChunked = false
    /// `100 Continue` was sent for the body being awaited (the head is handled again as the
    /// body arrives; it is sent once).
    var sentContinue = false
    /// Unix time the request's token expires (0: none, or the route lets streams outlive it).
    var tokenExpiresAt: Int64 = 0
    /// Loop time the request's first byte was seen (0: between requests).
    var start: UInt64 = 0
    /// Who is opening a tunnel, when the request is an upgrade on a route that ends streams
    /// with their token.
    var tunnelIdentity: TunnelIdentity?
}

/// Who opened a tunnel, kept for revocation checks while it lasts.
struct TunnelIdentity {
    let subject: [UInt8]
    let tokenID: [UInt8]
    let loginID: [UInt8]
    let issuedAt: Int64
}
