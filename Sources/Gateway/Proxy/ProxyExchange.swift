import CGatewayShims
import Glibc

/// The proxy's side of one exchange, driven on the upstream connection that carries it: send
/// the rewritten request and its body, parse the upstream's answer as strictly as a request,
/// relay its body with backpressure (a side stops being read while the other cannot take more),
/// then give the connection back to the pool. The client side is a `ProxyStream`: the exchange
/// never sees a client socket or the client's wire format.
extension UpstreamConnection {
    /// Sends the request as far as it can now (the head is already in `output`); called once
    /// the exchange has begun.
    func sendRequest() {
        guard let stream else { return }
        guard pushRequest() else { upstreamFailed(); return }
        guard self.stream != nil else { return }
        stream.exchangeWaits(exchange.wait(connecting: phase == .connecting))
        updateInterest()
    }

    /// The client sent more of the request body.
    func requestBodyArrived() {
        guard !exchange.requestComplete else { return }
        guard pushRequest() else { upstreamFailed(); return }
        if stream != nil { updateInterest() }
    }

    /// Moves request bytes from the client side to the upstream socket until one of them has
    /// no more: body bytes waiting behind a head that filled `output` move once it is written,
    /// without waiting for an event that would not come. False on a write error.
    private func pushRequest() -> Bool {
        while true {
            pumpRequestBody()
            guard stream != nil, phase != .connecting, let pending = output?.readableBytes else { return true }
            guard flush() else { return false }
            // Done, or the socket is full (EPOLLOUT resumes), or nothing more came from the client.
            if exchange.requestComplete || !(output?.isEmpty ?? true) || pending == 0 { return true }
        }
    }

    /// The client side has room again: more of the answer may move, and the upstream may be
    /// read again.
    func streamHasRoom() {
        relayResponse()
        if stream != nil && phase == .active { readBufferedRecords() }
        if stream != nil { updateInterest() }
    }

    /// The exchange's deadline passed: 504 before the answer began, cut after.
    func exchangeTimedOut() {
        guard let stream else { return }
        if exchange.timedOut == .cutClient { stream.exchangeAborted("timeout") } else { answerError(.gatewayTimeout) }
    }

    /// Moves request body bytes from the client side into `output`, within the route's limit.
    private func pumpRequestBody() {
        guard !exchange.requestComplete, let stream, output != nil else { return }
        switch stream.moveRequestBody(into: &output!, exchange: &exchange) {
        case .progress:
            break
        case .done:
            exchange.requestComplete = true
        case .malformed:
            refuseRequestBody(.badRequest)
        case .tooLarge:
            refuseRequestBody(.payloadTooLarge)
        }
    }

    private func refuseRequestBody(_ response: GatewayResponse) {
        guard let stream else { return }
        let started = exchange.responseStarted
        pool.close(self)
        if started { stream.exchangeAborted("request_body_refused") } else { stream.requestBodyRefused(response) }
    }

    // MARK: upstream events

    func exchangeEvent(_ events: IOEvents) {
        guard let stream else { pool.close(self); return }
        defer { stream.exchangeEventHandled() }
        if upstreamWasStale(events) {
            upstreamFailed()
            return
        }
        if exchange.tunneling, let tunnel = stream as? any UpgradableStream {
            tunnel.tunnelEvent(self, events)
            return
        }
        var justConnected = false
        if phase == .connecting {
            if events.failed || socket.pendingError != 0 {
                upstreamFailed()
                return
            }
            guard shakeHands() else { return }
            phase = .active
            justConnected = true
            stream.exchangeWaits(exchange.wait(connecting: false))
        }
        if events.writable || justConnected {
            guard flush(), pushRequest() else { upstreamFailed(); return }
            guard self.stream != nil else { return }
            if exchange.awaitsAnswerHead { stream.exchangeProgressed() }
        }
        if events.readable {
            switch readOnce() {
            case nil:
                upstreamFailed()
                return
            case .bytes?:
                stream.exchangeProgressed()
                relayResponse()
            case .eof?:
                relayResponse()
            case .wouldBlock?:
                break
            }
            guard self.stream != nil else { return }
            readBufferedRecords()
        }
        if self.stream != nil { updateInterest() }
    }

    /// Over TLS, once connected: advances the handshake; true once it is done and the request
    /// may go (the connect timeout covers both). A refused certificate is a failed upstream (502)
    /// and said in the log, once per connection.
    private func shakeHands() -> Bool {
        guard case let .tls(session) = transport else { return true }
        handshaking = true
        switch session.handshake(socket) {
        case .done:
            handshaking = false
            return true
        case .pending:
            updateInterest()
        case .failed:
            let why = session.verifyFailure.map { "certificate refused: \($0)" } ?? "handshake failed"
            pool.worker.logEvent("upstream \(pool.target.url): TLS (name \(pool.target.tls?.serverName ?? "")): \(why)")
            upstreamFailed()
        }
        return false
    }

    /// Answer bytes held in the TLS session (records beyond the room there was) come with no
    /// readiness event of their own: they are read while the client side takes them and each
    /// round moves something.
    private func readBufferedRecords() {
        while transport.hasBufferedInput, let stream, stream.canTakeResponse, !exchange.tunneling {
            let before = (input?.readableBytes ?? 0, exchange.responseBodyBytes, exchange.responseHeadDone)
            switch readOnce() {
            case nil:
                upstreamFailed()
                return
            case .bytes?, .eof?:
                relayResponse()
            case .wouldBlock?:
                return
            }
            // No room was made and nothing read: the client side's room will call again.
            if before == (input?.readableBytes ?? 0, exchange.responseBodyBytes, exchange.responseHeadDone) { return }
        }
    }

    /// A pooled connection whose readiness came in the same loop batch that took it from the
    /// pool: the bytes (or the close) were there before this exchange's request was written, so
    /// they are stray bytes of an earlier answer, never this request's answer.
    private func upstreamWasStale(_ events: IOEvents) -> Bool {
        guard reused && !exchange.gotBytes && takenInBatch == pool.worker.loop.batch && events.readable else { return false }
        // Over TLS the readiness may be records that carry no answer bytes (a late session
        // ticket): those are read now, and only an answer byte, a close or a record left half
        // read is stray.
        return !idleReadableKeepsIt()
    }

    /// Writable while the request is unsent, readable while the client side has room.
    func updateInterest() {
        guard phase == .active || phase == .connecting, let stream else { return }
        var interest: Interest = []
        if phase == .connecting {
            // Connecting: writable says done; shaking hands: the peer's records are awaited.
            interest = handshaking ? (transport.hasPendingOutput ? [.read, .write] : .read) : .write
        } else {
            if hasOutput { interest.insert(.write) }
            let upstreamRoom = input.map { $0.writableBytes > 0 || $0.readerIndex > 0 } ?? true
            if stream.canTakeResponse && upstreamRoom && !exchange.eof { interest.insert(.read) }
        }
        if !watch(interest) { upstreamFailed() }
    }

    // MARK: response

    /// Parses the upstream's head once complete, then relays body bytes as room allows.
    private func relayResponse() {
        var idleRound = false
        while true {
            guard let stream, let uin = input else { return }
            if !exchange.responseHeadDone {
                if uin.isEmpty {
                    if exchange.eof { upstreamFailed() }
                    return
                }
                let fields = pool.worker.responseFields
                switch parseResponseHead(uin.readable, fields: fields, limits: exchange.limits) {
                case .incomplete:
                    if !exchange.eof && uin.readerIndex == 0 && uin.writableBytes == 0 && pool.worker.buffers.enlarge(&input!) {
                        return  // room to read the rest of a large head
                    }
                    if exchange.eof || (uin.readerIndex == 0 && uin.writableBytes == 0) { answerError(.badGateway) }
                    return
                case .error:
                    answerError(.badGateway)
                    return
                case let .complete(h):
                    let framing = Gateway.responseBody(h, requestWasHEAD: stream.requestWasHEAD)
                    switch exchange.answerHeadParsed(status: h.status, framing: framing) {
                    case .skip:
                        input!.consume(h.headLength)   // interim answers are not relayed
                        continue
                    case .refuse:
                        answerError(.badGateway)
                        return
                    case .upgrade:
                        guard let tunnel = stream as? any UpgradableStream else { answerError(.badGateway); return }
                        tunnel.upgradeAccepted(self, headLength: h.headLength)
                        return
                    case let .relay(body):
                        if exchangeStartNanos != 0 { pool.worker.upstreamAnswered(afterNanos: monotonicNanos() - exchangeStartNanos) }
                        let head = ForwardedResponseHead(h, body: body, buffer: uin.readable, fields: fields)
                        switch stream.writeResponseHead(head, for: self) {
                        case .written: break
                        case .noRoomYet: return
                        case .tooLarge: answerError(.badGateway); return
                        }
                        input!.consume(h.headLength)
                        exchange.answerHeadRelayed(framing: framing, keepAlive: h.keepAlive)
                        stream.exchangeWaits(.body)
                    }
                }
            }
            let buffered = input?.readableBytes ?? 0
            let done = pumpResponseBody(stream)
            guard self.stream != nil else { return }
            guard stream.sendResponse() else { stream.exchangeAborted("client_write_failed"); return }
            if done { finish(); return }
            // Bytes left here because the client side was full move as soon as it has room,
            // which sending may just have made: no event would come for bytes already read.
            let left = input?.readableBytes ?? 0
            guard left > 0 && stream.canTakeResponse else { return }
            if left == buffered {
                // One more round after a round that moved nothing, not an endless loop.
                if idleRound { return }
                idleRound = true
            }
        }
    }

    /// Copies response body bytes to the client side as room allows, de-framed from the
    /// upstream's framing and framed as the stream asked; true when the body is complete.
    private func pumpResponseBody(_ stream: any ProxyStream) -> Bool {
        guard input != nil else { return true }
        let chunked = stream.responseChunked
        let (complete, truncated) = stream.withResponseBuffer { out in
            Self.moveResponseBody(from: &input!, to: &out, exchange: &exchange, chunked: chunked)
        }
        if truncated {
            // The answer cannot be completed: the client sees it end mid-body.
            _ = stream.sendResponse()
            stream.exchangeAborted("upstream_broke_off")
            return false
        }
        return complete
    }

    /// Moves what `uin` holds of the answer's body into `out`, de-framed from the upstream's
    /// framing and framed for the client (`chunked`); whether the body is complete, and whether
    /// it can no longer be (the upstream closed or broke its framing mid-body).
    private static func moveResponseBody(from uin: inout ByteBuffer, to out: inout ByteBuffer, exchange: inout ExchangeState,
                                         chunked: Bool) -> (complete: Bool, truncated: Bool) {
        var complete = false
        var truncated = false
        switch exchange.responseBody {
        case .none:
            complete = true
        case let .length(remaining):
            let n = out.move(from: &uin, limit: remaining)
            exchange.responseBodyBytes += Int64(n)
            exchange.responseBody = .length(remaining - Int64(n))
            complete = remaining - Int64(n) == 0
            if !complete && exchange.eof && uin.isEmpty { truncated = true }
        case var .chunked(decoder):
            switch ChunkedRelay.relay(from: &uin, to: &out, decoder: &decoder, reframe: chunked, moved: &exchange.responseBodyBytes) {
            case .progress: if exchange.eof && uin.isEmpty { truncated = true }
            case .done: complete = true
            case .malformed, .tooLarge: truncated = true
            }
            exchange.responseBody = .chunked(decoder)
        case .untilClose:
            // Framed as chunks for an HTTP/1.1 client: room kept for the size line and CRLFs.
            let n = min(uin.readableBytes, max(0, out.writableBytes - 32))
            if n > 0 {
                if chunked {
                    precondition(out.append(hex: n), "chunk-size line within the reserve")
                    out.appendWithinRoom("\r\n")
                }
                exchange.responseBodyBytes += Int64(out.move(from: &uin, limit: Int64(n)))
                if chunked { out.appendWithinRoom("\r\n") }
            }
            // The last chunk waits for room like any other bytes.
            if exchange.eof && uin.isEmpty && (!chunked || out.append("0\r\n\r\n")) { complete = true }
        }
        return (complete, truncated)
    }

    /// The answer is handed over: the connection goes back to the pool when it can carry
    /// another and its next answer cannot be mistaken for this one's leftovers
    /// (`ExchangeState.reusable`), else it is closed.
    private func finish() {
        guard let stream else { return }
        let bodyBytes = exchange.responseBodyBytes, unsent = exchange.unsentBody
        // Leftovers either way: answer bytes past the answer, or request bytes not yet sent (an
        // early answer while the socket was full): the upstream would read them as a request.
        // Over TLS, bytes may also wait decrypted or half-read in the session.
        let leftover = !(input?.isEmpty ?? true) || !(output?.isEmpty ?? true) || !transport.isQuiet
        if exchange.reusable(leftover: leftover) { pool.release(self) } else { pool.close(self) }
        stream.exchangeFinished(bodyBytes: bodyBytes, unsentBody: unsent)
    }

    /// The upstream failed before its answer began: replay once on a fresh connection when
    /// that is safe (a bodyless idempotent request on a reused connection), else 502.
    private func upstreamFailed() {
        guard let stream else { return }
        let action = exchange.failed(reused: reused)
        if action == .cutClient {
            stream.exchangeAborted("upstream_failed")
            return
        }
        if action == .replay, let head = keptRequestHead, let fresh = try? pool.connectNew() {
            fresh.beginExchange(stream: stream, exchange.replayed)
            fresh.input = pool.worker.buffers.take()
            fresh.output = pool.worker.buffers.take()
            fresh.output!.appendWithinRoom(head)
            pool.close(self)
            stream.exchangeMoved(to: fresh)
            stream.exchangeWaits(.connect)
            fresh.updateInterest()
            return
        }
        answerError(.badGateway)
    }

    /// Ends the exchange before its answer began; the client side answers `response` itself.
    private func answerError(_ response: GatewayResponse) {
        guard let stream else { return }
        let complete = exchange.requestComplete
        pool.close(self)
        stream.exchangeFailed(response, requestComplete: complete)
    }
}
