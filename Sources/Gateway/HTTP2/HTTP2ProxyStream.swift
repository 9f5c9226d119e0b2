import CGatewayShims

/// An HTTP/2 stream as the proxy's client side. The request body comes from the stream's DATA,
/// framed for the upstream as the rewritten head said (its Content-Length, or chunks when the
/// client gave none), and each byte taken gives the client that much window back (flow control
/// as backpressure). The answer's head is submitted to nghttp2 (names lower-cased, HTTP/1.1's
/// connection fields left out); its body waits in the stream's buffer for the session's data
/// source, and the upstream is read only while that buffer and the connection's limit have room.
extension HTTP2Stream: ProxyStream {
    // MARK: request body

    func moveRequestBody(into out: inout ByteBuffer, exchange: inout ExchangeState) -> ChunkedRelay.Outcome {
        var taken = 0
        defer {
            if taken > 0 {
                consumed(taken)
                if body?.isEmpty ?? false { releaseBody() }
            }
        }
        switch exchange.requestBody {
        case let .length(remaining):
            if body != nil { taken = out.move(from: &body!, limit: remaining) }
            exchange.requestBody = .length(remaining - Int64(taken))
            return remaining - Int64(taken) == 0 ? .done : .progress
        case .chunked:
            // The size line, the CRLF after the data and the last chunk fit in the reserve.
            let room = out.writableBytes - 32
            if let b = body, !b.isEmpty, room > 0 {
                let n = min(b.readableBytes, room)
                exchange.requestBodyBytes += Int64(n)
                guard exchange.requestBodyBytes <= exchange.maxRequestBody else { return .tooLarge }
                _ = out.append(hex: n)
                out.appendWithinRoom("\r\n")
                taken = out.move(from: &body!, limit: Int64(n))
                out.appendWithinRoom("\r\n")
            }
            guard state.requestComplete && (body?.isEmpty ?? true) else { return .progress }
            return out.append("0\r\n\r\n") ? .done : .progress
        case .none, .untilClose:
            return .done
        }
    }

    var requestWasHEAD: Bool { isHEAD }

    // MARK: answer

    func writeResponseHead(_ head: ForwardedResponseHead, for u: UpstreamConnection) -> ResponseHeadOutcome {
        let noBody = head.body == .none || isHEAD
        let submitted = worker.http2Fields.withForwarded(head) { nva, count in
            session.submitResponse(id, nva, count: count, endStream: noBody)
        }
        guard let submitted else { return .tooLarge }
        guard submitted else { return .tooLarge }
        logLine.status = head.status
        if noBody {
            state.answerIsWhole()
            answered()
        }
        return .written
    }

    func withResponseBuffer<R>(_ body: (inout ByteBuffer) -> R) -> R {
        if answer == nil { answer = worker.buffers.take(); holdAnswer() }
        if answer!.readerIndex > 0 && answer!.writableBytes < 1024 { answer!.compact() }
        return body(&answer!)
    }

    var responseChunked: Bool { false }

    /// Room in the stream's answer buffer, or for a new one within the connection's limit; a
    /// stream refused for the limit is woken when buffers are given back (HTTP2Connection.hold).
    var canTakeResponse: Bool {
        if let a = answer { return a.writableBytes > 0 || a.readerIndex > 0 }
        guard connection.heldBytes < connection.maxHeldBytes else {
            connection.waitForBuffer(self)
            return false
        }
        return true
    }

    func sendResponse() -> Bool {
        // A full answer buffer waits for the client to read: it has idle_timeout to.
        if !canTakeResponse { setDeadline(UInt64(snapshot.config.server.idleTimeoutMs)) }
        resumeAnswer()
        connection.outputDue()
        return !connection.isClosed
    }

    func exchangeFinished(bodyBytes: Int64, unsentBody: BodyDiscard?) {
        logLine.bytes = bodyBytes
        state.answerIsWhole()
        state.exchangeEnded()
        _ = sendResponse()
    }

    func exchangeFailed(_ response: GatewayResponse, requestComplete: Bool) {
        state.exchangeEnded()
        respond(.error(response))
    }

    func requestBodyRefused(_ response: GatewayResponse) {
        state.exchangeEnded()
        respond(.error(response))
    }

    func exchangeAborted(_ why: StaticString) {
        logLine.closed = why
        // Cut for time (a stalled side, an expired token): CANCEL; broken: INTERNAL_ERROR.
        let timed = ["timeout", "token_expired", "token_revoked"].contains(why.description)
        reset(timed ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR)
    }

    func exchangeMoved(to exchange: UpstreamConnection) {
        state.exchangeMoved(to: exchange)
    }

    func exchangeWaits(_ wait: ExchangeWait) {
        let server = snapshot.config.server
        switch wait {
        case .connect: setDeadline(UInt64(server.connectTimeoutMs))
        case .response: setDeadline(UInt64(server.responseTimeoutMs))
        case .body: setDeadline(UInt64(server.bodyTimeoutMs))
        }
    }

    func exchangeProgressed() {
        progress(UInt64(snapshot.config.server.bodyTimeoutMs))
    }

    func exchangeEventHandled() {
        connection.outputDue()
    }
}
