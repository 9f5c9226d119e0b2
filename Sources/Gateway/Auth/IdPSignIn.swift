import TokenCore

/// Sign-in with an identity provider, as datarhei Core has it for Auth0: `POST /api/login` with
/// `Authorization: Bearer <provider's access token>` and no body answers the gateway's own access
/// and refresh tokens for the token's subject (claim `idp`: the provider's issuer). Throttled
/// as password logins are (by address: no user is named before the token is verified); a
/// refusal is datarhei's 401 after `login.failure_delay`. The check runs on the providers' own
/// thread, so a provider being slow delays only its sign-ins.
extension EndpointRequest {
    func identityProviderSignIn(_ token: UnsafeRawBufferPointer) -> EndpointOutcome {
        let address = clientAddress()
        let throttle = worker.throttle
        if let wait = throttle.admit(address: address, user: nil, now: worker.loop.now) {
            worker.metrics.countLogin(api: "idp", result: "throttled")
            return .respond(.error(.tooManyRequests, retryAfter: Int(wait)), bodyRead: true)
        }
        guard let providers = snapshot.identityProviders else {
            return .respond(.error(.serviceUnavailable, detail: "Identity providers are not running"), bodyRead: true)
        }
        let bytes = Array(token), tenants = snapshot.idpTenants, revocations = snapshot.revocations, localUsers = snapshot.credentials
        let now = worker.loop.unixNow, snapshot = self.snapshot, worker = self.worker
        let outcome = SignInOutcome()
        return .deferred(DeferredAnswer(
            consumed: head.headLength,
            pool: providers.thread,
            job: {
                outcome.accepted = providers.signIn(bytes, tenants: tenants, localUsers: localUsers, revocations: revocations, now: now)
                // Given back here, not when answering: a client gone meanwhile still succeeded.
                if outcome.accepted != nil { throttle.succeeded(address: address, user: nil) }
                return outcome.accepted != nil
            },
            finish: { ok in
                worker.metrics.countLogin(api: "idp", result: ok ? "success" : "invalid")
                guard ok, let accepted = outcome.accepted else {
                    return (.error(.unauthorized, detail: "Invalid authorization credentials"), UInt64(snapshot.config.login.failureDelayMs))
                }
                return (Self.loginTokens(subject: accepted.subject, envelope: false, worker: worker, snapshot: snapshot,
                                         identityProvider: accepted.issuer), 0)
            },
            unavailable: {
                throttle.succeeded(address: address, user: nil)
                return .error(.serviceUnavailable, detail: "Too many sign-ins in progress")
            }))
    }
}

/// What the providers' thread found, read back on the loop once the job is done (the loop's
/// hand-off orders the write before the read).
private final class SignInOutcome: @unchecked Sendable {
    var accepted: (issuer: String, subject: String)?
}
