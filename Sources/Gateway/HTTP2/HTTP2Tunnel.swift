import CGatewayShims

/// WebSocket over an HTTP/2 stream (RFC 8441): the extended CONNECT went up as HTTP/1.1's
/// upgrade request; once the upstream answers 101 the client gets 200 (with the subprotocol and
/// extensions the upstream chose), and then DATA frames and the upstream's bytes pass both ways
/// unparsed, each side read only while the other can take more: the client's DATA through the
/// stream's window, the upstream's bytes through the stream's answer buffer. The client ending
/// its side half-closes the upstream; the upstream closing ends the stream once all it sent is
/// delivered.
extension HTTP2Stream: UpgradableStream {
    func upgradeAccepted(_ u: UpstreamConnection, headLength: Int) {
        guard let uin = u.input else { return }
        let upgrade = UnsafeRawBufferPointer(start: uin.base + uin.readerIndex, count: headLength)
        let fields = worker.responseFields
        guard case let .complete(h) = parseResponseHead(upgrade, fields: fields, limits: snapshot.httpLimits) else {
            exchangeFailed(.badGateway, requestComplete: false)
            u.pool.close(u)
            return
        }
        let accepted = ForwardedResponseHead(h, body: .unknown, buffer: upgrade, fields: fields)
        let submitted = worker.http2Fields.withTunnel(accepted) { nva, count in
            session.submitResponse(id, nva, count: count, endStream: false)
        }
        u.input!.consume(headLength)
        guard submitted else { reset(NGHTTP2_INTERNAL_ERROR); return }
        logLine.status = 200
        state.tunnelAccepted()
        setDeadline(UInt64(snapshot.config.server.idleTimeoutMs))
        moveTunnelBytes(u)
    }

    func tunnelEvent(_ u: UpstreamConnection, _ events: IOEvents) {
        if events.writable { _ = u.flush() }
        if events.readable || events.failed {
            switch u.readOnce() {
            case nil:
                exchangeAborted("upstream_read_failed")
                return
            case .bytes?:
                progress(UInt64(snapshot.config.server.idleTimeoutMs))
            default:
                break
            }
        }
        moveTunnelBytes(u)
    }

    /// Moves what each side has buffered to the other, flushes the upstream, and sets what it is
    /// watched for.
    func moveTunnelBytes(_ u: UpstreamConnection) {
        guard state.upstream != nil else { return }
        // Upstream to client: into the answer buffer, for the session's data source.
        if let uin = u.input, !uin.isEmpty {
            withResponseBuffer { out in _ = out.move(from: &u.input!) }
            resumeAnswer()
        }
        // Over TLS, bytes held in the session come with no event: read while each read brings
        // some and the client side has room.
        while u.transport.hasBufferedInput, u.input?.isEmpty == true, canTakeResponse {
            guard let r = u.readOnce() else { exchangeAborted("upstream_read_failed"); return }
            guard case .bytes = r else { break }
            withResponseBuffer { out in _ = out.move(from: &u.input!) }
            resumeAnswer()
        }
        // Client to upstream: DATA taken gives the client that much window back.
        if let b = body, !b.isEmpty, u.output != nil {
            let n = u.output!.move(from: &body!)
            consumed(n)
            if body!.isEmpty { releaseBody() }
            progress(UInt64(snapshot.config.server.idleTimeoutMs))
        }
        if state.halfClosesUpstream(clientBytesPending: !(body?.isEmpty ?? true) || !(u.output?.isEmpty ?? true)) {
            u.shutdownWrite()
        }
        guard u.flush() else { exchangeAborted("upstream_write_failed"); return }
        if u.exchange.eof && (u.input?.isEmpty ?? true) && !state.answerComplete {
            // The upstream closed: the stream ends once the client has everything it sent.
            state.answerIsWhole()
            resumeAnswer()
        }
        var interest: Interest = []
        if u.hasOutput { interest.insert(.write) }
        if !u.exchange.eof && canTakeResponse { interest.insert(.read) }
        if !u.watch(interest) { exchangeAborted("epoll_failed"); return }
        connection.outputDue()
    }
}
