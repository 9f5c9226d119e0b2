import CGatewayShims
import Glibc
import TokenCore

/// What the gateway does with a request head, decided the same way whatever protocol it came in
/// on: the endpoint table (the gateway's own endpoints are answered by their handlers,
/// EndpointRequest.swift), the route, the bearer check and the body limit.
struct RequestVerdict {
    enum Action {
        /// Answered with the gateway's own error; nothing forwarded.
        case refuse(GatewayResponse)
        /// Answered, and the connection (HTTP/1.1) or stream (HTTP/2) ends: its body cannot be
        /// accounted for.
        case refuseAndClose(GatewayResponse)
        /// One of the gateway's own endpoints.
        case own(Endpoint)
        /// Forwarded on a route.
        case proxy(ProxyPlan)
    }

    var action: Action
    /// The route's errors take the envelope profile's shape.
    var envelopeErrors = false
}

/// A request the bearer check (where the route has one) let through.
struct ProxyPlan {
    let route: Int
    /// Who the token vouched for (valid until the next check on this worker); nil on a route
    /// without auth.
    let subject: UnsafeRawBufferPointer?
    /// When the token expires, on a route that ends streams at expiry (0: not checked).
    let tokenExpiresAt: Int64
    /// Who opened a WebSocket tunnel, checked again for revocation while it lasts.
    let tunnelIdentity: TunnelIdentity?
}

/// How an exchange could not be started.
enum ExchangeStartFailure: Error {
    /// No upstream connection (502).
    case noUpstream
    /// The rewritten head does not fit even a large buffer (431, and the request's end).
    case headTooLarge
}

extension Worker {
    /// The verdict on `head` (its bytes in `buf`); fills the log entry's method, path, user and
    /// the rule a token failed on.
    func verdict(on head: RequestHead, in buf: UnsafeRawBufferPointer, snapshot: GatewayState,
                 log: inout AccessLogEntry) -> RequestVerdict {
        log.enabled = snapshot.config.log.access
        log.reset()
        if snapshot.config.metrics.enable { log.startNanos = monotonicNanos() }
        log.method(UnsafeRawBufferPointer(rebasing: buf[head.method.start..<head.method.end]))
        let target = UnsafeRawBufferPointer(rebasing: buf[head.target.start..<head.target.end])
        log.path(target)

        if head.isCONNECT { return RequestVerdict(action: .refuseAndClose(.badRequest)) }
        guard let pathLength = try? Router.checkTarget(target) else { return RequestVerdict(action: .refuse(.badRequest)) }
        let routeIndex: Int
        switch snapshot.endpoints.match(UnsafeRawBufferPointer(rebasing: target[0..<pathLength])) {
        case let .proxy(i): routeIndex = i; log.route = i
        case .notFound: return RequestVerdict(action: .refuse(.notFound))
        case let own: return RequestVerdict(action: .own(own))
        }
        let route = snapshot.routes[routeIndex]
        var verdict = RequestVerdict(action: .refuse(.unauthorized), envelopeErrors: route.envelopeErrors)

        var subject: UnsafeRawBufferPointer?
        var expiresAt: Int64 = 0
        var identity: TunnelIdentity?
        if route.authRequired {
            switch checkBearer(head, buffer: buf, snapshot: snapshot, acceptIdP: route.acceptIdPTokens) {
            case let .success(v):
                subject = v.subject
                log.user(v.subject)
                if route.closeOnExpiry {
                    expiresAt = v.expiresAt
                    if head.upgradeWebSocket {
                        identity = TunnelIdentity(subject: Array(v.subject), tokenID: Array(v.tokenID),
                                                  loginID: Array(v.loginID), issuedAt: v.issuedAt)
                    }
                }
            case let .failure(rule):
                log.rule = rule
                return verdict
            }
        }
        // HTTP/1.0 allows a request without Host, but it goes up as HTTP/1.1, where Host is
        // required: refused rather than forwarded without one.
        guard head.host != nil else { verdict.action = .refuse(.badRequest); return verdict }
        if let length = head.contentLength, length > route.maxBodyBytes {
            verdict.action = .refuseAndClose(.payloadTooLarge)
            return verdict
        }
        verdict.action = .proxy(ProxyPlan(route: routeIndex, subject: subject, tokenExpiresAt: expiresAt, tunnelIdentity: identity))
        return verdict
    }

    /// Starts `plan`'s exchange for `stream`: a pooled upstream connection of this loop, the
    /// rewritten head in its output, the body framed as the head says.
    func startExchange(_ plan: ProxyPlan, head: RequestHead, in buf: UnsafeRawBufferPointer, stream: any ProxyStream,
                       peer: PeerAddress, scheme: StaticString, snapshot: GatewayState,
                       log: inout AccessLogEntry) throws(ExchangeStartFailure) -> UpstreamConnection {
        let route = snapshot.routes[plan.route]
        let pool = self.pool(route.upstreamIndex)
        guard let u = try? pool.acquire() else { throw .noUpstream }
        if u.input == nil { u.input = buffers.take() }
        if u.output == nil { u.output = buffers.take() }
        let rewrite = RequestRewriter.Input(
            buffer: buf, head: head, fields: requestFields, forwardAuthorization: route.forwardAuthorization,
            subject: plan.subject, peer: peer, tunnel: head.upgradeWebSocket, strip: snapshot.strippedFields, scheme: scheme)
        var rewritten = RequestRewriter.write(rewrite, into: &u.output!, requestID: { self.appendRequestID(&$0, log: &log) })
        if !rewritten && buffers.enlarge(&u.output!) {
            rewritten = RequestRewriter.write(rewrite, into: &u.output!, requestID: { self.appendRequestID(&$0, log: &log) })
        }
        guard rewritten else {
            pool.close(u)
            throw .headTooLarge
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
        u.beginExchange(stream: stream, ExchangeState(limits: snapshot.httpLimits, body: body, maxBody: route.maxBodyBytes,
                                                      tunnel: head.upgradeWebSocket, keptHeadLength: keptHead))
        return u
    }

    static func isIdempotent(_ method: UnsafeRawBufferPointer) -> Bool {
        method.elementsEqual("GET".utf8) || method.elementsEqual("HEAD".utf8) || method.elementsEqual("OPTIONS".utf8)
    }
}

/// An HTTP/1.1 request's way up to the proxy: the verdict, then the exchange on a pooled upstream
/// connection of the same loop (ProxyExchange.swift takes it from there).
extension ClientConnection {
    /// Handles one parsed request head; false (stop taking pipelined requests for now) unless
    /// it was answered at once and the next one may be read.
    func startRequest(_ head: RequestHead) -> Bool {
        guard let inp = input else { return false }
        let buf = inp.readable
        let verdict = worker.verdict(on: head, in: buf, snapshot: snapshot, log: &logLine)
        machine.request.envelopeErrors = verdict.envelopeErrors
        let plan: ProxyPlan
        switch verdict.action {
        case let .refuse(response):
            respond(.error(response), head: head)
            return readsNextInput
        case let .refuseAndClose(response):
            respondAndClose(response)
            return false
        case let .own(endpoint):
            let request = EndpointRequest(head: head, bytes: buf, fields: worker.requestFields, worker: worker,
                                          snapshot: snapshot, peer: peer)
            return execute(request.answer(endpoint, log: &logLine), head: head)
        case let .proxy(p):
            plan = p
        }
        machine.request.tokenExpiresAt = plan.tokenExpiresAt
        machine.request.tunnelIdentity = plan.tunnelIdentity

        let u: UpstreamConnection
        do {
            u = try worker.startExchange(plan, head: head, in: buf, stream: self, peer: peer, scheme: transport.scheme,
                                         snapshot: snapshot, log: &logLine)
        } catch .noUpstream {
            respond(.error(.badGateway), head: head)
            return readsNextInput
        } catch {
            respondAndClose(.headersTooLarge)
            return false
        }
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
}
