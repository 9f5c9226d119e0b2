import TokenCore

/// datarhei Core's login API, answered by the gateway itself and never forwarded:
/// `POST /api/login`, `GET /api/login/refresh`, and `GET /api` (the about object); the envelope
/// profile's login shares the password check. Password checks run on the blocking pool; a failed
/// login is answered after `login.failure_delay`.
extension EndpointRequest {
    // MARK: login

    func login(envelope: Bool, log: inout AccessLogEntry) -> EndpointOutcome {
        // datarhei Core's sign-in with an identity provider: its access token, no body.
        if !envelope, !snapshot.idpTenants.isEmpty, let token = bearerToken, !head.chunked, (head.contentLength ?? 0) == 0 {
            return identityProviderSignIn(token)
        }
        let malformed: LocalResponse = envelope ? .envelope(.invalidRequest) : .error(.badRequest, detail: "Missing authorization credentials")
        let body: UnsafeRawBufferPointer
        switch smallJSONBody(malformed: malformed) {
        case let .outcome(o): return o
        case let .body(b): body = b
        }
        guard let (user, password) = envelope ? Self.strings(in: body, "user", "password") : Self.strings(in: body, "username", "password") else {
            return .respond(malformed, bodyRead: true)
        }
        user.withUnsafeBytes { log.user($0) }
        let address = clientAddress()
        let throttle = worker.throttle
        if let wait = throttle.admit(address: address, user: user, now: worker.loop.now) {
            worker.metrics.countLogin(api: envelope ? "envelope" : "datarhei", result: "throttled")
            return .respond(envelope ? .envelope(.tooManyAttempts, retryAfter: Int(wait)) : .error(.tooManyRequests, retryAfter: Int(wait)),
                            bodyRead: true)
        }
        // `finish` runs after the request's bytes have moved on: it reads only these.
        let credentials = snapshot.credentials, snapshot = self.snapshot, worker = self.worker
        return .deferred(DeferredAnswer(
            consumed: head.headLength + body.count,
            job: {
                // Given back here, not when answering: a client gone meanwhile still succeeded.
                let ok = credentials.check(name: user, password: password)
                if ok { throttle.succeeded(address: address, user: user) }
                return ok
            },
            finish: { ok in
                worker.metrics.countLogin(api: envelope ? "envelope" : "datarhei", result: ok ? "success" : "invalid")
                guard ok else {
                    // The failure was counted when the attempt was admitted; the answer waits.
                    let refused: LocalResponse = envelope ? .envelope(.invalidCredentials)
                        : .error(.unauthorized, detail: "Invalid authorization credentials: invalid username or password")
                    return (refused, UInt64(snapshot.config.login.failureDelayMs))
                }
                return (Self.loginTokens(subject: String(decoding: user, as: UTF8.self), envelope: envelope, worker: worker, snapshot: snapshot), 0)
            },
            unavailable: {
                throttle.succeeded(address: address, user: user)  // not a guess: give the attempt back
                return .error(.serviceUnavailable, detail: "Too many logins in progress")
            }))
    }

    /// The access and refresh tokens of a login; `identityProvider` (an issuer) when it was a
    /// sign-in with a provider's token, carried as the `idp` claim.
    static func loginTokens(subject: String, envelope: Bool, worker: Worker, snapshot: GatewayState,
                            identityProvider: String? = nil) -> LocalResponse {
        if envelope {
            let mustChange = snapshot.credentials.entry(named: Array(subject.utf8))?.mustChangePassword ?? false
            return envelopeTokens(subject: subject, loginID: newRotatingFamily(), refreshed: false, redirect: mustChange,
                                  worker: worker, snapshot: snapshot)
        }
        do {
            // A login family only when logout must void the access tokens too: otherwise the
            // tokens carry exactly datarhei Core's claims.
            let family = snapshot.config.tokens.revokeAccessOnLogout ? Crypto.uuidV4() : nil
            let now = worker.loop.unixNow
            let access = try worker.issuer.issue(subject: subject, use: .access, ring: snapshot.ring, now: now, loginID: family,
                                                 identityProvider: identityProvider)
            let refresh = try worker.issuer.issue(subject: subject, use: .refresh, ring: snapshot.ring, now: now, loginID: family,
                                                  identityProvider: identityProvider)
            var body = JSONWriter(capacity: 1024)
            body.raw("{\"access_token\":"); body.string(access.token)
            body.raw(",\"refresh_token\":"); body.string(refresh.token)
            body.raw("}")
            return .json(body.bytes)
        } catch {
            return .error(.internalError)
        }
    }

    // MARK: refresh

    func refresh(log: inout AccessLogEntry) -> EndpointOutcome {
        guard let token = bearerToken else {
            log.rule = BearerFailureRule("no_token")
            return .respond(.error(.unauthorized))
        }
        let subject: [UInt8], loginID: [UInt8], identityProvider: [UInt8]
        do {
            let v = try worker.verifier.verify(token, use: .refresh, ring: snapshot.ring, revocations: snapshot.revocations, now: worker.loop.unixNow)
            subject = Array(v.subject)
            loginID = Array(v.loginID)
            identityProvider = Array(v.identityProvider)
        } catch {
            log.rule = BearerFailureRule(error)
            return .respond(.error(.unauthorized))
        }
        subject.withUnsafeBytes { log.user($0) }
        // An envelope refresh token is spent when used; here it would mint access tokens
        // again and again, outside its rotation.
        guard !Self.isRotatingFamily(loginID) else {
            log.rule = BearerFailureRule("rotating_refresh")
            return .respond(.error(.unauthorized))
        }
        // The subject must still be let in: by the users, or by the provider it signed in with.
        let allowed = identityProvider.isEmpty ? snapshot.credentials.isActive(subject)
            : snapshot.idpTenants.contains { t in
                Array(t.issuer.utf8) == identityProvider && subject.withUnsafeBytes { t.allows($0, localUsers: snapshot.credentials) }
            }
        guard allowed else { return .respond(.error(.forbidden, detail: "Invalid subject")) }
        do {
            // The login family carries over, so a later reuse of the envelope refresh token voids
            // this access token too.
            let access = try worker.issuer.issue(subject: String(decoding: subject, as: UTF8.self), use: .access,
                                                 ring: snapshot.ring, now: worker.loop.unixNow,
                                                 loginID: loginID.isEmpty ? nil : String(decoding: loginID, as: UTF8.self),
                                                 identityProvider: identityProvider.isEmpty ? nil : String(decoding: identityProvider, as: UTF8.self))
            var body = JSONWriter(capacity: 512)
            body.raw("{\"access_token\":"); body.string(access.token); body.raw("}")
            return .respond(.json(body.bytes))
        } catch {
            return .respond(.error(.internalError))
        }
    }

    // MARK: about

    func about() -> EndpointOutcome {
        var full = false
        if let token = bearerToken,
           (try? worker.verifier.verify(token, use: .access, ring: snapshot.ring, revocations: snapshot.revocations,
                                        now: worker.loop.unixNow)) != nil {
            full = true
        }
        var body = snapshot.about.body(full: full, uptimeSeconds: worker.loop.unixNow - snapshot.about.startedAt)
        if full, let fromUpstream = snapshot.upstreamAbout?.body(auths: snapshot.about.auths) { body = fromUpstream }
        return .respond(.json(body))
    }
}
