import TokenCore

/// `POST /api/logout` with the refresh token as Bearer (or a JSON body `{"refresh_token"}`):
/// the token's `jti` is revoked until its `exp` — at once in memory, and in the journal, fsync'd
/// on the blocking pool before the 204 is sent, so an acknowledged logout survives a crash.
extension ClientConnection {
    func startLogout(_ head: RequestHead, buffer: UnsafeRawBufferPointer) -> Bool {
        let invalid = Self.error(401, "Unauthorized", "Missing or invalid JWT token")
        var token: [UInt8]
        var bodyLength = 0
        if head.authorizationCount == 1, let auth = head.authorization,
           let bearer = BearerCheck.token(in: UnsafeRawBufferPointer(rebasing: buffer[auth.start..<auth.end])) {
            token = Array(bearer)
            if let cl = head.contentLength, cl > 0 {
                guard cl <= 4096 else { respondAndClose(.payloadTooLarge); return false }
                guard buffer.count >= head.headLength + Int(cl) else { return false }
                bodyLength = Int(cl)
            }
        } else {
            switch smallJSONBody(head, buffer: buffer, malformed: invalid) {
            case .wait: return false
            case .answered: return readsNextInput
            case let .body(b):
                bodyLength = b.count
                guard let (t, _) = Self.strings(in: b, "refresh_token", "refresh_token") else {
                    respondLocally(bytes: invalid, status: 401, head: head, bodyRead: true)
                    return readsNextInput
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
            logLine.user(v.subject)
        } catch {
            logLine.rule = BearerFailureRule(error)
            respondLocally(bytes: invalid, status: 401, head: head, bodyRead: true)
            return readsNextInput
        }
        snapshot.revocations.revoke(jti: jti, until: expiresAt)
        // revoke_access_on_logout: the whole login (its access tokens carry the same family).
        if !family.isEmpty { snapshot.revocations.revoke(family: family, until: expiresAt) }
        consumeInput(head.headLength + bodyLength)
        guard let journal = snapshot.journal else {
            _ = appendOutput(Self.noContent)
            logLine.status = 204
            finishLocalRequest()
            return readsNextInput
        }
        state = .pending
        pendingAnswer = nil
        setDeadline(worker.loop.now + 30_000, keepIfEarlier: false)
        let fd = self.fd, generation = self.generation, box = WorkerBox(worker)
        let queued = worker.blocking.submit {
            let storedJTI = (try? journal.append(.jti, jti, until: expiresAt)) != nil
            let stored = storedJTI && (family.isEmpty || (try? journal.append(.lid, family, until: expiresAt)) != nil)
            box.worker.loop.execute { box.worker.logoutStored(fd: fd, generation: generation, stored: stored) }
        }
        if !queued { deliverPending(GatewayResponse.serviceUnavailable.bytes(close: false), status: 503) }
        return false
    }

    static let noContent = Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)
}

extension Worker {
    func logoutStored(fd: Int32, generation: UInt32, stored: Bool) {
        guard case let .client(c)? = loop.handler(fd, generation: generation), case .pending = c.state else { return }
        // Not stored: the revocation holds in memory, but it could not be made durable.
        c.deliverPending(stored ? ClientConnection.noContent : GatewayResponse.internalError.bytes(close: false), status: stored ? 204 : 500)
        if case .closed = c.state {} else { c.updateInterest() }
    }

    /// Hands out `answer` once its revocation is durable (the envelope refresh).
    func answerWhenStored(fd: Int32, generation: UInt32, stored: Bool, answer: [UInt8]) {
        guard case let .client(c)? = loop.handler(fd, generation: generation), case .pending = c.state else { return }
        c.deliverPending(stored ? answer : EnvelopeError.internalError.bytes(), status: stored ? 200 : 500)
        if case .closed = c.state {} else { c.updateInterest() }
    }

    /// Writes a revocation to the journal without waiting for it (reuse detection: the tokens
    /// it voids are refused in memory at once, and no answer depends on it).
    func persist(_ kind: RevocationJournal.Kind, _ bytes: [UInt8], until: Int64) {
        guard let journal = state.journal else { return }
        _ = blocking.submit { try? journal.append(kind, bytes, until: until) }
    }
}
