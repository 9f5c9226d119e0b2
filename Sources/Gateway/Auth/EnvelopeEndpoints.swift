import TokenCore

/// The envelope login API (`[profiles] envelope = true`): the same users, keys and throttling
/// as datarhei's, answered as `{"code":0,"result":{...}}` or `{"code","error","desc"}`, with its
/// own token lifetimes and rotating refresh tokens with reuse detection (OAuth 2.0 security BCP:
/// a refresh token presented twice voids every token of its login).
extension EndpointRequest {
    /// `{"code":0,"result":{...}}` with a fresh access and refresh token of login family
    /// `loginID`; a refresh answer also carries `code` and `desc` inside `result`.
    /// The login family (`lid`) of an envelope login starts with this: its refresh tokens rotate
    /// (each is spent when used), so they are refreshed only by the envelope endpoint, and the
    /// datarhei refresh endpoint, whose refresh tokens are reusable until they expire, refuses them.
    /// Tokens are signed, so the mark cannot be added or removed by a client.
    static let rotatingFamilyPrefix: [UInt8] = Array("rot-".utf8)

    static func isRotatingFamily(_ lid: some Collection<UInt8>) -> Bool { lid.starts(with: rotatingFamilyPrefix) }

    static func newRotatingFamily() -> String { "rot-" + Crypto.uuidV4() }

    static func envelopeTokens(subject: String, loginID: String, refreshed: Bool, redirect: Bool,
                               worker: Worker, snapshot: GatewayState) -> LocalResponse {
        let p = snapshot.config.profiles
        do {
            let now = worker.loop.unixNow
            let access = try worker.issuer.issue(subject: subject, use: .access, ring: snapshot.ring, now: now,
                                                 lifetime: p.envelopeAccessTTLSeconds, loginID: loginID)
            let refresh = try worker.issuer.issue(subject: subject, use: .refresh, ring: snapshot.ring, now: now,
                                                  lifetime: p.envelopeRefreshTTLSeconds, loginID: loginID)
            var w = JSONWriter(capacity: 1200)
            w.raw("{\"code\":0,")
            if redirect { w.raw("\"redirect\":"); w.string(p.envelopeRedirect); w.raw(",") }
            w.raw("\"result\":{")
            if refreshed { w.raw("\"code\":0,\"desc\":\"Ok\",") }
            w.raw("\"token_type\":\"Bearer\",\"access_token\":"); w.string(access.token)
            w.raw(",\"access_token_expires_in\":"); w.int(p.envelopeAccessTTLSeconds)
            w.raw(",\"refresh_token\":"); w.string(refresh.token)
            w.raw(",\"refresh_token_expires_in\":"); w.int(p.envelopeRefreshTTLSeconds)
            w.raw("}}")
            return .json(w.bytes)
        } catch {
            return .envelope(.internalError)
        }
    }

    func envelopeRefresh(log: inout AccessLogEntry) -> EndpointOutcome {
        let body: UnsafeRawBufferPointer
        switch smallJSONBody(malformed: .envelope(.invalidRequest)) {
        case let .outcome(o): return o
        case let .body(b): body = b
        }
        func answer(_ e: EnvelopeError, rule: TokenError? = nil) -> EndpointOutcome {
            if let rule { log.rule = BearerFailureRule(rule) }
            return .respond(.envelope(e), bodyRead: true)
        }
        let tape = JSONTape(capacity: 8)
        guard (try? tape.parse(body, limits: JSONLimits(maxBytes: 4096, maxDepth: 4, maxValues: 64))) != nil, tape[0].kind == .object,
              let t = JSONText.member("refresh_token", of: 0, in: tape, bytes: body), tape[t].kind == .string else {
            return answer(.invalidRequest)
        }
        let token = Array(JSONText.DecodedBytes(tape[t], in: body))
        guard !token.isEmpty else { return answer(.invalidRequest) }

        // The token itself first, without revocation: a revoked one must still be recognised
        // to tell reuse from garbage.
        let revocations = snapshot.revocations
        let subject: [UInt8], jti: [UInt8], family: [UInt8], issuedAt: Int64, expiresAt: Int64
        do {
            let v = try worker.verifier.verify(String(decoding: token, as: UTF8.self), use: .refresh, ring: snapshot.ring,
                                               revocations: nil, now: worker.loop.unixNow)
            subject = Array(v.subject); jti = Array(v.tokenID); family = Array(v.loginID)
            issuedAt = v.issuedAt; expiresAt = v.expiresAt
        } catch {
            return answer(.invalidToken, rule: error)
        }
        // A datarhei refresh token is refreshed where it was issued, never turned into a
        // rotating pair here.
        guard Self.isRotatingFamily(family) else {
            log.rule = BearerFailureRule("not_rotating_refresh")
            return answer(.invalidToken)
        }
        let revokedWhy = jti.withUnsafeBytes { j in subject.withUnsafeBytes { s in family.withUnsafeBytes { f in
            revocations.check(jti: j, subject: s, issuedAt: issuedAt, family: f.isEmpty ? nil : f) } } }
        if let why = revokedWhy {
            let reused = jti.withUnsafeBytes { revocations.isRevoked(jti: $0) }
            if reused {
                // Reuse: the token was already exchanged. Void the whole login.
                let until = worker.loop.unixNow + snapshot.config.profiles.envelopeRefreshTTLSeconds
                revocations.revoke(family: family, until: until)
                worker.persist(.lid, family, until: until)
                return answer(.tokenReused, rule: why)
            }
            return answer(reused ? .tokenReused : .invalidToken, rule: why)
        }
        // The optional access token: signature valid (expiry ignored), same subject.
        if head.authorizationCount > 0 {
            guard let bearer = bearerToken else { return answer(.invalidToken) }
            do {
                let v = try worker.lenientVerifier.verify(bearer, use: .access, ring: snapshot.ring, revocations: nil, now: worker.loop.unixNow)
                guard v.subject.elementsEqual(subject) else { return answer(.invalidToken) }
            } catch {
                return answer(.invalidToken, rule: error)
            }
        }
        subject.withUnsafeBytes { log.user($0) }
        guard snapshot.credentials.isActive(subject) else { return answer(.invalidToken) }
        // Rotate: this refresh token is spent; a second use is reuse.
        guard revocations.revokeIfNew(jti: jti, until: expiresAt) else {
            let until = worker.loop.unixNow + snapshot.config.profiles.envelopeRefreshTTLSeconds
            revocations.revoke(family: family, until: until)
            worker.persist(.lid, family, until: until)
            return answer(.tokenReused)
        }
        let loginID = String(decoding: family, as: UTF8.self)
        let tokens = Self.envelopeTokens(subject: String(decoding: subject, as: UTF8.self), loginID: loginID, refreshed: true,
                                         redirect: false, worker: worker, snapshot: snapshot)
        // The spent token's revocation is fsync'd before the new tokens are handed out, so a
        // crash cannot make it usable again.
        guard let journal = snapshot.journal else { return .respond(tokens, bodyRead: true) }
        return .deferred(DeferredAnswer(
            consumed: head.headLength + body.count,
            job: { (try? journal.append(.jti, jti, until: expiresAt)) != nil },
            finish: { stored in (stored ? tokens : .envelope(.internalError), 0) },
            unavailable: { .envelope(.internalError) }))
    }
}
