import CGatewayShims
import Glibc
import TokenCore

/// datarhei Core's login API, answered by the gateway itself and never forwarded:
/// `POST /api/login`, `GET /api/login/refresh`, and `GET /api` (the about object).
/// Password checks run on the blocking pool; a failed login is answered after a loop timer.
extension ClientConnection {
    /// Handles the gateway's own endpoints; nil when `path` is not one of them.
    func handleOwnEndpoint(_ path: UnsafeRawBufferPointer, head: RequestHead, buffer: UnsafeRawBufferPointer) -> Bool? {
        let method = UnsafeRawBufferPointer(rebasing: buffer[head.method.start..<head.method.end])
        if HeaderName.equals(path, "/api") {
            guard method.elementsEqual("GET".utf8) || method.elementsEqual("HEAD".utf8) else { return methodNotAllowed(head) }
            return answerAbout(head, buffer: buffer)
        }
        guard snapshot.config.auth.enable else { return nil }
        let profiles = snapshot.config.profiles
        if profiles.envelope {
            if path.elementsEqual(profiles.envelopeLoginPath.utf8) || path.elementsEqual(profiles.envelopeRefreshPath.utf8) {
                guard acceptsJSON(head, buffer: buffer) else {
                    respondLocally(bytes: EnvelopeError.notAcceptable.bytes(), status: 406, head: head)
                    return readsNextInput
                }
                guard method.elementsEqual("POST".utf8) else {
                    respondLocally(bytes: EnvelopeError.methodNotAllowed.bytes(), status: 405, head: head)
                    return readsNextInput
                }
                if path.elementsEqual(profiles.envelopeLoginPath.utf8) { return startLogin(head, buffer: buffer, envelope: true) }
                return answerEnvelopeRefresh(head, buffer: buffer)
            }
        }
        if HeaderName.equals(path, "/api/login") {
            guard method.elementsEqual("POST".utf8) else { return methodNotAllowed(head) }
            return startLogin(head, buffer: buffer, envelope: false)
        }
        if HeaderName.equals(path, "/api/logout") {
            guard method.elementsEqual("POST".utf8) else { return methodNotAllowed(head) }
            return startLogout(head, buffer: buffer)
        }
        if HeaderName.equals(path, "/api/login/refresh") {
            guard method.elementsEqual("GET".utf8) else { return methodNotAllowed(head) }
            return answerRefresh(head, buffer: buffer)
        }
        return nil
    }

    private func methodNotAllowed(_ head: RequestHead) -> Bool {
        respondLocally(.methodNotAllowed, head: head)
        return readsNextInput
    }

    /// A JSON answer of the gateway's own, as bytes.
    static func json(status: Int, reason: String, body: [UInt8], extraHeaders: String = "") -> [UInt8] {
        Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\(extraHeaders)\r\n".utf8) + body
    }

    static func error(_ status: Int, _ reason: String, _ detail: String, extraHeaders: String = "") -> [UInt8] {
        GatewayResponse.build(status: status, reason: reason, detail: detail, close: false, extraHeaders: extraHeaders)
    }

    // MARK: login

    /// A small JSON body (at most 4 KiB, Content-Length framed): waits until it is all in.
    enum SmallBody {
        case wait
        case answered
        case body(UnsafeRawBufferPointer)
    }

    func smallJSONBody(_ head: RequestHead, buffer: UnsafeRawBufferPointer, malformed: [UInt8]) -> SmallBody {
        guard !head.chunked, let length = head.contentLength else {
            if head.chunked { respondAndClose(.badRequest); return .answered }
            respondLocally(bytes: malformed, status: 400, head: head)
            return .answered
        }
        guard length <= 4096 else {
            respondAndClose(.payloadTooLarge)
            return .answered
        }
        guard buffer.count >= head.headLength + Int(length) else {
            // Wait for the whole (small) body; the head is parsed again when it is complete.
            if head.expectContinue && !sentContinue {
                sentContinue = true
                _ = appendOutput(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                _ = flush()
            }
            return .wait
        }
        sentContinue = false
        let body = UnsafeRawBufferPointer(rebasing: buffer[head.headLength..<(head.headLength + Int(length))])
        guard isJSONContentType(head, buffer: buffer) else {
            respondLocally(bytes: malformed, status: 400, head: head, bodyRead: true)
            return .answered
        }
        return .body(body)
    }

    private func startLogin(_ head: RequestHead, buffer: UnsafeRawBufferPointer, envelope: Bool) -> Bool {
        let malformed = envelope ? EnvelopeError.invalidRequest.bytes() : Self.error(400, "Bad Request", "Missing authorization credentials")
        let body: UnsafeRawBufferPointer
        switch smallJSONBody(head, buffer: buffer, malformed: malformed) {
        case .wait: return false
        case .answered: return readsNextInput
        case let .body(b): body = b
        }
        let length = body.count
        guard let (user, password) = envelope ? Self.strings(in: body, "user", "password") : Self.strings(in: body, "username", "password") else {
            respondLocally(bytes: malformed, status: 400, head: head, bodyRead: true)
            return readsNextInput
        }
        user.withUnsafeBytes { logLine.user($0) }
        let address = clientAddress(head, buffer: buffer)
        let throttle = worker.throttle
        if let wait = throttle.admit(address: address, user: user, now: worker.loop.now) {
            let answer = envelope ? EnvelopeError.tooManyAttempts.bytes(extraHeaders: "Retry-After: \(wait)\r\n")
                : Self.error(429, "Too Many Requests", "Too many failed logins; retry later", extraHeaders: "Retry-After: \(wait)\r\n")
            respondLocally(bytes: answer, status: 429, head: head, bodyRead: true)
            return readsNextInput
        }
        consumeInput(head.headLength + length)
        state = .pending
        pendingAnswer = nil
        pendingEnvelope = envelope
        setDeadline(worker.loop.now + 30_000, keepIfEarlier: false)
        let credentials = snapshot.credentials
        let fd = self.fd, generation = self.generation
        let box = WorkerBox(worker)
        let accepted = worker.blocking.submit {
            let ok = credentials.check(name: user, password: password)
            // Back to the connection's own loop; the worker is touched only there.
            box.worker.loop.execute { box.worker.loginChecked(fd: fd, generation: generation, ok: ok, user: user, address: address) }
        }
        if !accepted {
            throttle.succeeded(address: address, user: user)  // not a guess: give the attempt back
            state = .awaitingHead
            _ = appendOutput(Self.error(503, "Service Unavailable", "Too many logins in progress"))
            logLine.status = 503
            finishLocalRequest()
            return readsNextInput
        }
        return false
    }

    /// The password check came back (on this connection's loop).
    func finishLogin(ok: Bool, user: [UInt8], address: LoginThrottle.PeerKey) {
        guard case .pending = state else { return }
        if ok {
            worker.throttle.succeeded(address: address, user: user)
            let subject = String(decoding: user, as: UTF8.self)
            if pendingEnvelope {
                let mustChange = snapshot.credentials.entry(named: user)?.mustChangePassword ?? false
                deliverPending(envelopeTokens(subject: subject, loginID: Self.newRotatingFamily(), refreshed: false, redirect: mustChange), status: 200)
                return
            }
            do {
                // A login family only when logout must void the access tokens too: otherwise the
                // tokens carry exactly datarhei Core's claims.
                let family = snapshot.config.tokens.revokeAccessOnLogout ? Crypto.uuidV4() : nil
                let access = try worker.issuer.issue(subject: subject, use: .access, ring: snapshot.ring, now: worker.loop.unixNow,
                                                     loginID: family)
                let refresh = try worker.issuer.issue(subject: subject, use: .refresh, ring: snapshot.ring, now: worker.loop.unixNow,
                                                      loginID: family)
                var body = JSONWriter(capacity: 1024)
                body.raw("{\"access_token\":"); body.string(access.token)
                body.raw(",\"refresh_token\":"); body.string(refresh.token)
                body.raw("}")
                deliverPending(Self.json(status: 200, reason: "OK", body: body.bytes), status: 200)
            } catch {
                deliverPending(GatewayResponse.internalError.bytes(close: false), status: 500)
            }
            return
        }
        // The failure was counted when the attempt was admitted. Answered after the delay, held by a loop timer: other clients are served meanwhile.
        pendingAnswer = pendingEnvelope ? EnvelopeError.invalidCredentials.bytes()
            : Self.error(401, "Unauthorized", "Invalid authorization credentials: invalid username or password")
        let delay = UInt64(snapshot.config.login.failureDelayMs)
        if delay == 0 { deliverPending(pendingAnswer!, status: 401); return }
        setDeadline(worker.loop.now + delay, keepIfEarlier: false)
    }

    /// The pending answer's time has come (the delayed 401) or the check took too long.
    func pendingTimerFired() {
        if let answer = pendingAnswer {
            deliverPending(answer, status: 401)
        } else {
            deliverPending(GatewayResponse.serviceUnavailable.bytes(close: false), status: 503)
        }
    }

    func deliverPending(_ bytes: [UInt8], status: Int) {
        pendingAnswer = nil
        state = .awaitingHead
        guard appendOutput(bytes) else { respondAndClose(.internalError); return }
        logLine.status = status
        logLine.bytes = Int64(bytes.count)
        finishLocalRequest()
        if case .awaitingHead = state { processInput() }
        updateInterest()
    }

    private func isJSONContentType(_ head: RequestHead, buffer: UnsafeRawBufferPointer) -> Bool {
        for i in 0..<head.fieldCount {
            let f = worker.requestFields[i]
            guard HeaderName.equals(UnsafeRawBufferPointer(rebasing: buffer[f.name.start..<f.name.end]), "content-type") else { continue }
            let v = UnsafeRawBufferPointer(rebasing: buffer[f.value.start..<f.value.end])
            let type = "application/json"
            guard v.count >= type.utf8.count,
                  HeaderName.equals(UnsafeRawBufferPointer(rebasing: v[0..<type.utf8.count]), "application/json") else { return false }
            // Parameters such as charset may follow.
            return v.count == type.utf8.count || v[type.utf8.count] == UInt8(ascii: ";") || v[type.utf8.count] == 0x20
        }
        return false
    }

    /// Two members, both non-empty strings, from a JSON object body.
    static func strings(in body: UnsafeRawBufferPointer, _ first: StaticString, _ second: StaticString) -> ([UInt8], [UInt8])? {
        let tape = JSONTape(capacity: 16)
        guard (try? tape.parse(body, limits: JSONLimits(maxBytes: 4096, maxDepth: 4, maxValues: 64))) != nil,
              tape[0].kind == .object,
              let u = JSONText.member(first, of: 0, in: tape, bytes: body), tape[u].kind == .string,
              let p = JSONText.member(second, of: 0, in: tape, bytes: body), tape[p].kind == .string else { return nil }
        let a = Array(JSONText.DecodedBytes(tape[u], in: body))
        let b = Array(JSONText.DecodedBytes(tape[p], in: body))
        guard !a.isEmpty, !b.isEmpty, a.count <= 8192 else { return nil }
        return (a, b)
    }

    /// The client's address: the socket peer, or, when the peer is a trusted proxy, the
    /// rightmost X-Forwarded-For entry that is not one (never believed from anyone else).
    func clientAddress(_ head: RequestHead, buffer: UnsafeRawBufferPointer) -> LoginThrottle.PeerKey {
        let peerKey = LoginThrottle.PeerKey(high: peer.high, low: peer.low)
        let trusted = snapshot.config.server.trustedProxies
        guard !trusted.isEmpty, trusted.contains(peer.text) else { return peerKey }
        var entries: [String] = []
        for i in 0..<head.fieldCount {
            let f = worker.requestFields[i]
            if HeaderName.equals(UnsafeRawBufferPointer(rebasing: buffer[f.name.start..<f.name.end]), "x-forwarded-for") {
                let v = String(decoding: UnsafeRawBufferPointer(rebasing: buffer[f.value.start..<f.value.end]), as: UTF8.self)
                entries += v.split(separator: ",").map { String($0.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()) }
            }
        }
        for e in entries.reversed() where !trusted.contains(e) {
            if let key = Self.addressKey(e) { return key }
            break
        }
        return peerKey
    }

    static func addressKey(_ text: String) -> LoginThrottle.PeerKey? {
        var v6 = in6_addr(), v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return .init(high: 0, low: UInt64(v4.s_addr)) }
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { .init(high: $0.load(as: UInt64.self), low: $0.load(fromByteOffset: 8, as: UInt64.self)) }
        }
        return nil
    }

    // MARK: refresh

    private func answerRefresh(_ head: RequestHead, buffer: UnsafeRawBufferPointer) -> Bool {
        let invalid = Self.error(401, "Unauthorized", "Missing or invalid JWT token")
        guard head.authorizationCount == 1, let auth = head.authorization,
              let token = BearerCheck.token(in: UnsafeRawBufferPointer(rebasing: buffer[auth.start..<auth.end])) else {
            logLine.rule = BearerFailureRule("no_token")
            respondLocally(bytes: invalid, status: 401, head: head)
            return readsNextInput
        }
        let subject: [UInt8], loginID: [UInt8]
        do {
            let v = try worker.verifier.verify(token, use: .refresh, ring: snapshot.ring, revocations: snapshot.revocations, now: worker.loop.unixNow)
            subject = Array(v.subject)
            loginID = Array(v.loginID)
        } catch {
            logLine.rule = BearerFailureRule(error)
            respondLocally(bytes: invalid, status: 401, head: head)
            return readsNextInput
        }
        subject.withUnsafeBytes { logLine.user($0) }
        // An envelope refresh token is spent when used; here it would mint access tokens
        // again and again, outside its rotation.
        guard !Self.isRotatingFamily(loginID) else {
            logLine.rule = BearerFailureRule("rotating_refresh")
            respondLocally(bytes: invalid, status: 401, head: head)
            return readsNextInput
        }
        guard snapshot.credentials.isActive(subject) else {
            respondLocally(bytes: Self.error(403, "Forbidden", "Invalid subject"), status: 403, head: head)
            return readsNextInput
        }
        do {
            // The login family carries over, so a later reuse of the envelope refresh token voids
            // this access token too.
            let access = try worker.issuer.issue(subject: String(decoding: subject, as: UTF8.self), use: .access,
                                                 ring: snapshot.ring, now: worker.loop.unixNow,
                                                 loginID: loginID.isEmpty ? nil : String(decoding: loginID, as: UTF8.self))
            var body = JSONWriter(capacity: 512)
            body.raw("{\"access_token\":"); body.string(access.token); body.raw("}")
            respondLocally(bytes: Self.json(status: 200, reason: "OK", body: body.bytes), status: 200, head: head)
        } catch {
            respondLocally(.internalError, head: head)
        }
        return readsNextInput
    }

    // MARK: about

    private func answerAbout(_ head: RequestHead, buffer: UnsafeRawBufferPointer) -> Bool {
        var full = false
        if head.authorizationCount == 1, let auth = head.authorization,
           let token = BearerCheck.token(in: UnsafeRawBufferPointer(rebasing: buffer[auth.start..<auth.end])),
           (try? worker.verifier.verify(token, use: .access, ring: snapshot.ring, revocations: snapshot.revocations,
                                        now: worker.loop.unixNow)) != nil {
            full = true
        }
        var body = snapshot.about.body(full: full, uptimeSeconds: worker.loop.unixNow - snapshot.about.startedAt)
        if full, let fromUpstream = snapshot.upstreamAbout?.body(auths: snapshot.about.auths) { body = fromUpstream }
        respondLocally(bytes: Self.json(status: 200, reason: "OK", body: body), status: 200, head: head)
        return readsNextInput
    }
}
