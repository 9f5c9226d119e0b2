import TokenCore

/// The envelope login API (`[profiles] envelope = true`): the same users, keys and throttling
/// as datarhei's, answered as `{"code":0,"result":{...}}` or `{"code","error","desc"}`, with its
/// own token lifetimes and rotating refresh tokens with reuse detection (OAuth 2.0 security BCP:
/// a refresh token presented twice voids every token of its login).
extension ClientConnection {
    /// `Accept` allows JSON: absent, `application/json`, `application/*` or `*/*` (q > 0).
    func acceptsJSON(_ head: RequestHead, buffer: UnsafeRawBufferPointer) -> Bool {
        var sawAccept = false
        for i in 0..<head.fieldCount {
            let f = worker.requestFields[i]
            guard HeaderName.equals(UnsafeRawBufferPointer(rebasing: buffer[f.name.start..<f.name.end]), "accept") else { continue }
            sawAccept = true
            let value = String(decoding: UnsafeRawBufferPointer(rebasing: buffer[f.value.start..<f.value.end]), as: UTF8.self)
            for range in value.split(separator: ",") {
                let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                guard let type = parts.first else { continue }
                let refused = parts.dropFirst().contains { $0.replacingOccurrences(of: " ", with: "") == "q=0" || $0 == "q=0.0" || $0 == "q=0.00" || $0 == "q=0.000" }
                if !refused && (type == "application/json" || type == "application/*" || type == "*/*") { return true }
            }
        }
        return !sawAccept
    }

    /// `{"code":0,"result":{...}}` with a fresh access and refresh token of login family
    /// `loginID`; a refresh answer also carries `code` and `desc` inside `result`.
    /// The login family (`lid`) of an envelope login starts with this: its refresh tokens rotate
    /// (each is spent when used), so they are refreshed only by the envelope endpoint, and the
    /// datarhei refresh endpoint, whose refresh tokens are reusable until they expire, refuses them.
    /// Tokens are signed, so the mark cannot be added or removed by a client.
    static let rotatingFamilyPrefix: [UInt8] = Array("rot-".utf8)

    static func isRotatingFamily(_ lid: some Collection<UInt8>) -> Bool { lid.starts(with: rotatingFamilyPrefix) }

    static func newRotatingFamily() -> String { "rot-" + Crypto.uuidV4() }

    func envelopeTokens(subject: String, loginID: String, refreshed: Bool, redirect: Bool) -> [UInt8] {
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
            return Self.json(status: 200, reason: "OK", body: w.bytes)
        } catch {
            return EnvelopeError.internalError.bytes()
        }
    }

    func answerEnvelopeRefresh(_ head: RequestHead, buffer: UnsafeRawBufferPointer) -> Bool {
        let body: UnsafeRawBufferPointer
        switch smallJSONBody(head, buffer: buffer, malformed: EnvelopeError.invalidRequest.bytes()) {
        case .wait: return false
        case .answered: return readsNextInput
        case let .body(b): body = b
        }
        func answer(_ e: EnvelopeError, rule: TokenError? = nil) -> Bool {
            if let rule { logLine.rule = BearerFailureRule(rule) }
            respondLocally(bytes: e.bytes(), status: e.status.0, head: head, bodyRead: true)
            return readsNextInput
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
            logLine.rule = BearerFailureRule("not_rotating_refresh")
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
            guard head.authorizationCount == 1, let auth = head.authorization,
                  let bearer = BearerCheck.token(in: UnsafeRawBufferPointer(rebasing: buffer[auth.start..<auth.end])) else {
                return answer(.invalidToken)
            }
            do {
                let v = try worker.lenientVerifier.verify(bearer, use: .access, ring: snapshot.ring, revocations: nil, now: worker.loop.unixNow)
                guard v.subject.elementsEqual(subject) else { return answer(.invalidToken) }
            } catch {
                return answer(.invalidToken, rule: error)
            }
        }
        subject.withUnsafeBytes { logLine.user($0) }
        guard snapshot.credentials.isActive(subject) else { return answer(.invalidToken) }
        // Rotate: this refresh token is spent; a second use is reuse.
        guard revocations.revokeIfNew(jti: jti, until: expiresAt) else {
            let until = worker.loop.unixNow + snapshot.config.profiles.envelopeRefreshTTLSeconds
            revocations.revoke(family: family, until: until)
            worker.persist(.lid, family, until: until)
            return answer(.tokenReused)
        }
        let loginID = String(decoding: family, as: UTF8.self)
        let tokens = envelopeTokens(subject: String(decoding: subject, as: UTF8.self), loginID: loginID, refreshed: true, redirect: false)
        // The spent token's revocation is fsync'd before the new tokens are handed out, so a
        // crash cannot make it usable again.
        guard let journal = snapshot.journal else {
            respondLocally(bytes: tokens, status: 200, head: head, bodyRead: true)
            return readsNextInput
        }
        consumeInput(head.headLength + body.count)
        state = .pending
        pendingAnswer = nil
        setDeadline(worker.loop.now + 30_000, keepIfEarlier: false)
        let fd = self.fd, generation = self.generation, box = WorkerBox(worker)
        let queued = worker.blocking.submit {
            let stored = (try? journal.append(.jti, jti, until: expiresAt)) != nil
            box.worker.loop.execute { box.worker.answerWhenStored(fd: fd, generation: generation, stored: stored, answer: tokens) }
        }
        if !queued { deliverPending(EnvelopeError.internalError.bytes(), status: 500) }
        return false
    }
}
