import TokenCore

/// `POST /api/logout` with the refresh token as Bearer (or a JSON body `{"refresh_token"}`):
/// the token's `jti` is revoked until its `exp` — at once in memory, and in the journal, fsync'd
/// on the blocking pool before the 204 is sent, so an acknowledged logout survives a crash.
extension EndpointRequest {
    func logout(log: inout AccessLogEntry) -> EndpointOutcome {
        var token: [UInt8]
        var bodyLength = 0
        if let bearer = bearerToken {
            token = Array(bearer)
            // A body beside the Bearer token is not needed, but it is read whole before the answer.
            if head.chunked { return .respondAndClose(.badRequest) }
            if let cl = head.contentLength, cl > 0 {
                guard cl <= 4096 else { return .respondAndClose(.payloadTooLarge) }
                guard bytes.count >= head.headLength + Int(cl) else { return .awaitBody }
                bodyLength = Int(cl)
            }
        } else {
            switch smallJSONBody(malformed: .error(.unauthorized)) {
            case let .outcome(o): return o
            case let .body(b):
                bodyLength = b.count
                guard let (t, _) = Self.strings(in: b, "refresh_token", "refresh_token") else {
                    return .respond(.error(.unauthorized), bodyRead: true)
                }
                token = t
            }
        }
        let jti: [UInt8], family: [UInt8], expiresAt: Int64
        do {
            let v = try worker.verifier.verify(String(decoding: token, as: UTF8.self), use: .refresh, ring: snapshot.ring,
                                               revocations: snapshot.revocations, now: worker.loop.unixNow)
            jti = Array(v.tokenID)
            family = snapshot.config.tokens.revokeAccessOnLogout ? Array(v.loginID) : []
            expiresAt = v.expiresAt
            log.user(v.subject)
        } catch {
            log.rule = BearerFailureRule(error)
            return .respond(.error(.unauthorized), bodyRead: true)
        }
        snapshot.revocations.revoke(jti: jti, until: expiresAt)
        // revoke_access_on_logout: the whole login (its access tokens carry the same family).
        if !family.isEmpty { snapshot.revocations.revoke(family: family, until: expiresAt) }
        guard let journal = snapshot.journal else { return .respond(.noContent, bodyRead: true) }
        return .deferred(DeferredAnswer(
            consumed: head.headLength + bodyLength,
            job: {
                let storedJTI = (try? journal.append(.jti, jti, until: expiresAt)) != nil
                return storedJTI && (family.isEmpty || (try? journal.append(.lid, family, until: expiresAt)) != nil)
            },
            // Not stored: the revocation holds in memory, but it could not be made durable.
            finish: { stored in (stored ? .noContent : .error(.internalError), 0) },
            unavailable: { .error(.serviceUnavailable) }))
    }
}

extension Worker {
    /// Writes a revocation to the journal without waiting for it (reuse detection: the tokens
    /// it voids are refused in memory at once, and no answer depends on it).
    func persist(_ kind: RevocationJournal.Kind, _ bytes: [UInt8], until: Int64) {
        guard let journal = state.journal else { return }
        _ = blocking.submit { try? journal.append(kind, bytes, until: until) }
    }
}
