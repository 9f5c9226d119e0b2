import CGatewayShims
import Glibc

/// An HTTP/1.1 connection as the proxy's client side: the request body de-framed from the
/// connection's input (Content-Length or chunked, re-framed for the upstream), the answer written
/// to its output as HTTP/1.1 (the status line, the forwarded fields, Content-Length, chunked or
/// close-delimited framing), and after a 101 a byte tunnel. Bytes go through the connection's
/// transport, never straight to a socket from here.
extension ClientConnection: ProxyStream {
    // MARK: request body

    func moveRequestBody(into out: inout ByteBuffer, exchange: inout ExchangeState) -> ChunkedRelay.Outcome {
        guard input != nil else {
            if case .length(0) = exchange.requestBody { return .done }
            return .progress
        }
        switch exchange.requestBody {
        case let .length(remaining):
            let n = out.move(from: &input!, limit: remaining)
            exchange.requestBody = .length(remaining - Int64(n))
            return remaining - Int64(n) == 0 ? .done : .progress
        case var .chunked(decoder):
            let outcome = ChunkedRelay.relay(from: &input!, to: &out, decoder: &decoder, reframe: true,
                                             moved: &exchange.requestBodyBytes, limit: exchange.maxRequestBody)
            exchange.requestBody = .chunked(decoder)
            return outcome
        case .none, .untilClose:
            return .done
        }
    }

    var requestWasHEAD: Bool { machine.request.isHEAD }

    // MARK: response

    /// The upstream's status line and fields, then the framing this client gets: Content-Length
    /// when known, else chunked for HTTP/1.1 and close-delimited for HTTP/1.0. Written whole or
    /// not at all: a head that cannot fit even in an empty buffer is `.tooLarge` (502).
    func writeResponseHead(_ head: ForwardedResponseHead, for u: UpstreamConnection) -> ResponseHeadOutcome {
        if output == nil { output = worker.buffers.take() }
        output!.compact()
        let speaks11 = machine.request.speaks11
        let chunked = head.body == .unknown && speaks11
        // An HTTP/1.0 client learns the end of a body of unknown length from the close.
        let keep = machine.request.keepAlive && !(head.body == .unknown && !speaks11)
        let connection: HTTP1AnswerHead.ConnectionField = !keep ? .close : (speaks11 ? .none : .keepAlive)
        // Written whole or not at all: a head that does not fit leaves the output as it was.
        guard HTTP1AnswerHead.write(head, chunked: chunked, connection: connection, into: &output!) else {
            guard output!.isEmpty else { return .noRoomYet }
            guard worker.buffers.enlarge(&output!) else { return .tooLarge }
            return writeResponseHead(head, for: u)
        }
        machine.answerHeadWritten(chunked: chunked, keepAlive: keep)
        logLine.status = head.status
        return .written
    }

    func withResponseBuffer<R>(_ body: (inout ByteBuffer) -> R) -> R {
        if output == nil { output = worker.buffers.take() }
        return body(&output!)
    }

    var responseChunked: Bool { machine.request.responseChunked }

    var canTakeResponse: Bool { output.map { $0.writableBytes > 256 } ?? true }

    func sendResponse() -> Bool {
        flush()
    }

    func exchangeFinished(bodyBytes: Int64, unsentBody: BodyDiscard?) {
        logLine.bytes += bodyBytes
        writeAccessLog()
        let flushed = flush()
        let action = machine.exchangeFinished(unsentBody: unsentBody, draining: worker.closesAfterAnswers, outputPending: outputPending)
        guard flushed else { abort("client_write_failed"); return }
        switch action {
        case .close:
            close()
        case .closeWhenFlushed:
            break
        case .linger:
            // A client still sending its body reads the answer before the close.
            enterLingering()
        case let .next(discard):
            armIdleDeadline()
            if let discard { discardBody(discard) }
            processInput()
        }
    }

    /// The gateway's own error instead of the upstream's answer: the connection stays when the
    /// request was read whole, else it closes.
    func exchangeFailed(_ response: GatewayResponse, requestComplete: Bool) {
        guard machine.exchangeFailed(requestComplete: requestComplete) else {
            respondAndClose(response)
            return
        }
        let answer = wire(.error(response), close: answerEndsConnection)
        guard appendOutput(answer.bytes) else { respondAndClose(response); return }
        logLine.status = answer.status
        logLine.bytes = Int64(answer.bytes.count)
        finishLocalRequest()
        if machine.isAwaitingHead { processInput() }
    }

    func requestBodyRefused(_ response: GatewayResponse) {
        respondAndClose(response)
    }

    func exchangeAborted(_ why: StaticString) {
        abort(why)
    }

    func exchangeMoved(to u: UpstreamConnection) {
        machine.exchangeMoved(to: u)
    }

    func exchangeWaits(_ wait: ExchangeWait) {
        let ms: Int
        switch wait {
        case .connect: ms = config.server.connectTimeoutMs
        case .response: ms = config.server.responseTimeoutMs
        case .body: ms = config.server.bodyTimeoutMs
        }
        setDeadline(worker.loop.now + UInt64(ms), keepIfEarlier: false)
    }

    func exchangeProgressed() {
        progress()
    }

    func exchangeEventHandled() {
        updateInterest()
    }
}
