import CGatewayShims
import Glibc
import TokenCore

/// A request's way up to the proxy: the endpoint table (the gateway's own endpoints are answered
/// by their handlers, EndpointRequest.swift), the route, the bearer check,
/// the body limit, then the rewritten head on a pooled upstream connection of the same loop,
/// whose exchange (ProxyExchange.swift) takes it from there.
extension ClientConnection {
    /// Handles one parsed request head; false (stop taking pipelined requests for now) unless
    /// it was answered at once and the next one may be read.
    func startRequest(_ head: RequestHead) -> Bool {
        guard let inp = input else { return false }
        let buf = inp.readable
        logLine.enabled = config.log.access
        logLine.reset()
        logLine.method(UnsafeRawBufferPointer(rebasing: buf[head.method.start..<head.method.end]))
        let target = UnsafeRawBufferPointer(rebasing: buf[head.target.start..<head.target.end])
        logLine.path(target)

        if head.isCONNECT {
            respondAndClose(.badRequest)
            return false
        }
        let pathLength: Int
        do {
            pathLength = try Router.checkTarget(target)
        } catch {
            respond(.error(.badRequest), head: head)
            return readsNextInput
        }
        let path = UnsafeRawBufferPointer(rebasing: target[0..<pathLength])
        let routeIndex: Int
        switch snapshot.endpoints.match(path) {
        case let .proxy(i):
            routeIndex = i
        case .notFound:
            respond(.error(.notFound), head: head)
            return readsNextInput
        case let own:
            let request = EndpointRequest(head: head, bytes: buf, fields: worker.requestFields, worker: worker,
                                          snapshot: snapshot, peer: peer)
            return execute(request.answer(own, log: &logLine), head: head)
        }
        let route = snapshot.routes[routeIndex]
        machine.request.envelopeErrors = route.envelopeErrors

        var subject: UnsafeRawBufferPointer?
        if route.authRequired {
            switch worker.checkBearer(head, buffer: buf, snapshot: snapshot) {
            case let .success(v):
                let s = v.subject
                subject = s
                logLine.user(s)
                if route.closeOnExpiry {
                    machine.request.tokenExpiresAt = v.expiresAt
                    if head.upgradeWebSocket {
                        machine.request.tunnelIdentity = TunnelIdentity(subject: Array(v.subject), tokenID: Array(v.tokenID),
                                                        loginID: Array(v.loginID), issuedAt: v.issuedAt)
                    }
                }
            case let .failure(rule):
                logLine.rule = rule
                respond(.error(.unauthorized), head: head)
                return readsNextInput
            }
        }
        // HTTP/1.0 allows a request without Host, but it goes up as HTTP/1.1, where Host is
        // required: refused rather than forwarded without one.
        guard head.host != nil else {
            respond(.error(.badRequest), head: head)
            return readsNextInput
        }
        if let length = head.contentLength, length > route.maxBodyBytes {
            respondAndClose(.payloadTooLarge)
            return false
        }

        let pool = worker.pool(route.upstreamIndex)
        let u: UpstreamConnection
        do {
            u = try pool.acquire()
        } catch {
            respond(.error(.badGateway), head: head)
            return readsNextInput
        }
        if u.input == nil { u.input = worker.buffers.take() }
        if u.output == nil { u.output = worker.buffers.take() }
        let rewrite = RequestRewriter.Input(
            buffer: buf, head: head, fields: worker.requestFields, forwardAuthorization: route.forwardAuthorization,
            subject: subject, peer: peer, tunnel: head.upgradeWebSocket, strip: snapshot.strippedFields, scheme: transport.scheme)
        var rewritten = RequestRewriter.write(rewrite, into: &u.output!, requestID: { self.worker.appendRequestID(&$0, log: &self.logLine) })
        if !rewritten && worker.buffers.enlarge(&u.output!) {
            rewritten = RequestRewriter.write(rewrite, into: &u.output!, requestID: { self.worker.appendRequestID(&$0, log: &self.logLine) })
        }
        guard rewritten else {
            pool.close(u)
            respondAndClose(.headersTooLarge)
            return false
        }
        let body: BodyFraming
        var keptHead = 0
        if head.chunked {
            body = .chunked(ChunkedDecoder())
        } else if let length = head.contentLength, length > 0 {
            body = .length(length)
        } else {
            body = .none
            // A bodyless idempotent request on a pooled connection may be replayed once.
            if u.reused && Self.isIdempotent(UnsafeRawBufferPointer(rebasing: buf[head.method.start..<head.method.end])) {
                keptHead = u.output!.writerIndex
            }
        }
        u.beginExchange(stream: self, ExchangeState(limits: snapshot.httpLimits, body: body, maxBody: route.maxBodyBytes,
                                                    tunnel: head.upgradeWebSocket, keptHeadLength: keptHead))
        consumeInput(head.headLength)
        machine.proxyingBegins(u)
        if head.expectContinue && !u.exchange.requestComplete && (input?.isEmpty ?? true) {
            _ = appendOutput(ResponseWriter.continueLine)
        }
        u.sendRequest()
        if !(output?.isEmpty ?? true) { _ = flush() }
        return false
    }

    var readsNextInput: Bool { machine.readsNextInput }

    static func isIdempotent(_ method: UnsafeRawBufferPointer) -> Bool {
        method.elementsEqual("GET".utf8) || method.elementsEqual("HEAD".utf8) || method.elementsEqual("OPTIONS".utf8)
    }
}
