import TokenCore

/// The bearer step on a protected route: exactly one Authorization field, scheme `Bearer` in
/// any case, and an access token that TokenCore verifies. Every failure is the same 401 to the
/// client; the rule that failed goes to the access log.
enum BearerCheck {
    /// The token bytes of an Authorization value `Bearer <token>` (scheme in any case, one or
    /// more spaces), or nil when it is not that.
    static func token(in value: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard value.count > 7, HeaderName.equals(UnsafeRawBufferPointer(rebasing: value[0..<6]), "bearer"),
              value[6] == 0x20 else { return nil }
        var i = 7
        while i < value.count && value[i] == 0x20 { i += 1 }
        guard i < value.count else { return nil }
        // Anything but base64url and two dots inside fails the verifier's strict decoding, so the
        // b64token grammar (RFC 6750 2.1) needs no second pass here.
        return UnsafeRawBufferPointer(rebasing: value[i...])
    }
}

extension Worker {
    /// Verifies the request's bearer token as an access token; on success what it says (its
    /// byte views are valid until the next check on this worker). `acceptIdP`: a token whose
    /// `kid` is none of the gateway's may be an identity provider's access token instead.
    func checkBearer(_ head: RequestHead, buffer: UnsafeRawBufferPointer, snapshot: GatewayState, acceptIdP: Bool = false)
        -> Result<VerifiedToken, BearerFailureRule> {
        guard head.authorizationCount > 0, let auth = head.authorization else {
            return .failure(BearerFailureRule(head.authorizationCount > 1 ? "several_authorization" : "no_token"))
        }
        guard head.authorizationCount == 1 else { return .failure(BearerFailureRule("several_authorization")) }
        guard let token = BearerCheck.token(in: UnsafeRawBufferPointer(rebasing: buffer[auth.start..<auth.end])) else {
            return .failure(BearerFailureRule("not_bearer"))
        }
        do {
            return .success(try verifier.verify(token, use: .access, ring: snapshot.ring, revocations: snapshot.revocations, now: loop.unixNow))
        } catch let error where acceptIdP && (error == .unknownKid || error == .wrongType) {
            // Not one of the gateway's keys (or an RFC 9068 `at+jwt`, which the gateway never
            // issues): perhaps a provider's.
            return checkIdPToken(token, snapshot: snapshot)
        } catch {
            return .failure(BearerFailureRule(error))
        }
    }

    /// An identity provider's access token on a route with `accept_idp_tokens`. A `kid` no
    /// tenant knows has the keys fetched again in the background (once per cooldown); this
    /// request is refused now rather than held.
    private func checkIdPToken(_ token: UnsafeRawBufferPointer, snapshot: GatewayState) -> Result<VerifiedToken, BearerFailureRule> {
        switch idpVerifiers.verify(token, tenants: snapshot.idpTenants, localUsers: snapshot.credentials, revocations: snapshot.revocations,
                                   now: loop.unixNow) {
        case let .success(accepted):
            return .success(accepted.token)
        case .failure(.unknownKid):
            snapshot.identityProviders?.unknownKid(snapshot.idpTenants, now: loop.unixNow)
            return .failure(BearerFailureRule(TokenError.unknownKid))
        case .failure(.subjectNotAllowed):
            return .failure(BearerFailureRule("idp_subject_not_allowed"))
        case let .failure(.token(error)):
            return .failure(BearerFailureRule(error))
        }
    }
}

/// The rule a bearer check failed on, for the access log.
struct BearerFailureRule: Error {
    let text: StaticString?
    let tokenError: TokenError?
    init(_ text: StaticString) { self.text = text; tokenError = nil }
    init(_ error: TokenError) { text = nil; tokenError = error }
}
