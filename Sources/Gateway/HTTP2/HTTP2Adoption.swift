/// How a connection becomes HTTP/2, and the worker's dealings with HTTP/2 connections: work
/// from the blocking pool coming back to a stream, and streams whose token expired.
enum HTTP2Preface {
    /// RFC 9113 §3.4: the first bytes of every HTTP/2 connection, with prior knowledge or by ALPN.
    static let bytes: StaticString = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    enum Match { case none, partial, whole }

    /// Whether `input` begins with the preface (`partial`: all of it so far is its beginning).
    static func match(_ input: UnsafeRawBufferPointer) -> Match {
        let n = min(input.count, bytes.utf8CodeUnitCount)
        for i in 0..<n where input[i] != bytes.utf8Start[i] { return .none }
        return n == bytes.utf8CodeUnitCount ? .whole : .partial
    }
}

extension ClientConnection {
    /// Gives up the input buffer (to the HTTP/2 connection taking over) and any output buffer.
    func handOverBuffers() -> ByteBuffer? {
        let taken = input
        input = nil
        if let b = output { worker.buffers.release(b); output = nil }
        return taken
    }
}

extension Worker {
    /// `c`'s first bytes are the HTTP/2 preface: an HTTP/2 connection takes over its socket,
    /// registration, transport and the bytes read so far.
    func adoptHTTP2(_ c: ClientConnection) {
        // Asked to go while its preface arrived (shutdown, or shed): it goes as HTTP/2 too.
        let going = c.machine.isGoing
        guard c.machine.becomesHTTP2() else { return }
        let input = c.handOverBuffers()
        guard let h = HTTP2Connection(handingOver: c.socket, generation: c.generation, worker: self, peer: c.peer,
                                      transport: c.transport, snapshot: state, input: input) else {
            logEvent("HTTP/2 connection from \(c.peer.text) refused: no session")
            if let input { buffers.release(input) }
            loop.close(c.socket)
            connectionClosed()
            return
        }
        loop.replaceHandler(c.socket.slot, generation: c.generation, with: .http2(h))
        h.start()
        // Chosen by ALPN under a context from before a reload that turned HTTP/2 off, or asked
        // to go before it turned HTTP/2: GOAWAY at once, as the others had.
        if !state.config.server.http2 || draining || going { h.drain() }
    }

    /// Work for a stream's pending answer finished on the blocking pool; the connection or the
    /// stream may be gone.
    func http2DeferredDone(slot: Int32, generation: UInt32, stream: Int32, ticket: UInt64, ok: Bool) {
        guard case let .http2(h)? = loop.handler(slot, generation: generation) else { return }
        h.streams[stream]?.finishDeferred(ticket: ticket, ok: ok)
        h.afterEvent()
    }

    /// Streaming answers and WebSocket tunnels on HTTP/2 whose token has expired, and tunnels
    /// whose token was revoked, end here (once a second), as on HTTP/1.1: RST_STREAM CANCEL, and
    /// `closed=token_expired` (or `token_revoked`) in the log.
    func endHTTP2StreamsOfExpiredTokens(now: Int64) {
        for h in loop.http2Connections() {
            for s in h.streams.values where s.tokenExpiresAt > 0 {
                guard let u = s.state.upstream, u.exchange.responseStarted else { continue }
                var revoked = false
                if let id = s.tunnelIdentity {
                    revoked = id.tokenID.withUnsafeBytes { j in id.subject.withUnsafeBytes { sub in id.loginID.withUnsafeBytes { l in
                        state.revocations.check(jti: j, subject: sub, issuedAt: id.issuedAt, family: l.isEmpty ? nil : l) != nil } } }
                }
                guard revoked || now >= s.tokenExpiresAt else { continue }
                logEvent("ended an HTTP/2 \(s.state.isTunnel ? "tunnel" : "streaming answer"): its token \(revoked ? "was revoked" : "expired")")
                s.exchangeAborted(revoked ? "token_revoked" : "token_expired")
            }
            h.outputDue()
        }
    }
}
