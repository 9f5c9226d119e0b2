import Foundation
import Glibc
import Synchronization
import TokenCore

/// One `[[api.auth.auth0.tenants]]` of a configuration snapshot: the rules its tokens must meet
/// and the subjects it lets in, over a key source that may outlive the snapshot.
struct IdPTenant: Sendable {
    let issuer: String
    /// `iss` exact, `aud` containing the audience, `typ` JWT or at+jwt, no `jti` required.
    let policy: VerifierPolicy
    let everySubject: Bool
    let subjects: Set<[UInt8]>
    let source: IdPKeySource
    /// Its entry in `GET /api`'s `auths` (datarhei Core's form).
    let about: String

    init(_ t: GatewayConfig.Tenant, leeway: Int64, source: IdPKeySource) {
        issuer = t.effectiveIssuer
        policy = VerifierPolicy(issuer: issuer, audience: t.audience, leeway: leeway, requireTokenID: false,
                                acceptsAccessTokenType: true)
        everySubject = t.users.contains("*")
        subjects = Set(t.users.map { Array($0.utf8) })
        self.source = source
        let domain = t.domain.isEmpty ? (HTTPSLocation(issuer).map { $0.port == 443 ? $0.host : $0.hostPort } ?? "") : t.domain
        about = "auth0 domain=\(domain) audience=\(t.audience) clientid=\(t.clientID)"
    }

    /// Whether `subject` may sign in: listed by name, or allowed by `"*"` unless it is the name
    /// of a local user (the upstream could not tell them apart: both arrive as the same
    /// X-Forwarded-User). Naming it in `users` is the way to let it in.
    func allows(_ subject: UnsafeRawBufferPointer, localUsers: Credentials) -> Bool {
        let name = Array(subject)
        return subjects.contains(name) || (everySubject && localUsers.entry(named: name) == nil)
    }
}

/// The identity providers a gateway trusts, and the one thread that waits on them: key fetches
/// (the first at once, then as each set's caching says) and sign-ins with their tokens, which
/// may need a fetch first. Password logins, refreshes and bearer checks never wait on it, so a
/// slow or absent provider delays only its own sign-ins. Outlives reloads.
final class IdentityProviders: Sendable {
    /// The sign-ins' thread: one, so `signInVerifiers` is its own.
    let thread = BlockingPool(threads: 1, maxQueued: 1_024)
    /// The background key fetches' thread, apart from sign-ins so that they can never crowd
    /// out a refresh.
    private let fetcher = BlockingPool(threads: 1, maxQueued: 256)
    private let log: LogWriter
    private let sources = Mutex<[IdPKeySource]>([])
    private let ticking = Atomic<Bool>(false)
    /// Used only on `thread`.
    private nonisolated(unsafe) let signInVerifiers = IdPVerifiers()
    private let lastRefusalLogged = Atomic<Int64>(0)

    init(log: LogWriter) { self.log = log }

    /// The tenants of `config`, each over the key source of the running configuration that has
    /// the same issuer, keys URL, trust and algorithms (its keys stay), else a new one.
    func tenants(for config: GatewayConfig) throws -> [IdPTenant] {
        guard config.identityProviders.enable else { return [] }
        let running = sources.withLock { $0 }
        return try config.identityProviders.tenants.map { t in
            let identity = IdPKeySource.identity(of: t)
            let source = try running.first(where: { $0.identity == identity }) ?? IdPKeySource(tenant: t)
            return IdPTenant(t, leeway: config.tokens.leewaySeconds, source: source)
        }
    }

    /// Makes `tenants` the ones whose keys are kept fresh; starts the refresh ticker once.
    func install(_ tenants: [IdPTenant]) {
        sources.withLock { $0 = tenants.map(\.source) }
        guard !tenants.isEmpty, !ticking.exchange(true, ordering: .relaxed) else { return }
        Thread.detachNewThread { [self] in
            while true {
                refreshDue()
                usleep(500_000)
            }
        }
    }

    private func refreshDue() {
        let now = Int64(time(nil))
        for source in sources.withLock({ $0 }) where source.claimRefresh(now: now) {
            queueFetch(source, now: now)
        }
    }

    private func queueFetch(_ source: IdPKeySource, now: Int64) {
        let log = self.log
        let queued = fetcher.submit {
            if let line = source.fetch(now: now) { log.submit(line) }
        }
        // Never fetched on the caller's thread (it may be an event loop): the claim is given back.
        if !queued { source.releaseClaim() }
    }

    /// A token on a route named a `kid` no tenant has: each tenant's keys are fetched again,
    /// at most once per cooldown (never on the caller's thread).
    func unknownKid(_ tenants: [IdPTenant], now: Int64) {
        for t in tenants where t.source.claimUnknownKidFetch(now: now) { queueFetch(t.source, now: now) }
    }

    /// Signs in with an identity provider's access token (on `thread`): the tenant's issuer and
    /// the subject, or nil. A `kid` no tenant knows has the keys fetched first, at most once per
    /// cooldown.
    func signIn(_ token: [UInt8], tenants: [IdPTenant], localUsers: Credentials, revocations: RevocationSet,
                now: Int64) -> (issuer: String, subject: String)? {
        var outcome = token.withUnsafeBytes {
            signInVerifiers.verify($0, tenants: tenants, localUsers: localUsers, revocations: revocations, now: now)
        }
        if case .failure(.unknownKid) = outcome {
            var fetched = false
            for t in tenants where t.source.claimUnknownKidFetch(now: now) {
                if let line = t.source.fetch(now: now) { log.submit(line) }
                fetched = true
            }
            if fetched {
                outcome = token.withUnsafeBytes {
                    signInVerifiers.verify($0, tenants: tenants, localUsers: localUsers, revocations: revocations, now: now)
                }
            }
        }
        switch outcome {
        case let .success(accepted):
            return (tenants[accepted.tenant].issuer, accepted.subject)
        case let .failure(refusal):
            // Said at most once a second: refusals are an attacker's to multiply.
            let last = lastRefusalLogged.load(ordering: .relaxed)
            if now != last && lastRefusalLogged.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged {
                log.submit("identity provider sign-in refused: \(refusal.rule)")
            }
            return nil
        }
    }
}

/// Why an identity provider's token was refused.
enum IdPRefusal: Error, Equatable {
    case token(TokenError)
    /// No tenant has the token's `kid` (or has no keys yet).
    case unknownKid
    /// Verified, but its subject is not in the tenant's `users`.
    case subjectNotAllowed

    var rule: String {
        switch self {
        case let .token(e): return e.rule
        case .unknownKid: return "unknown_kid"
        case .subjectNotAllowed: return "subject_not_allowed"
        }
    }
}

/// One thread's verifiers for the identity providers' tokens (a `TokenVerifier` per tenant:
/// each has its own policy). Rebuilt when the tenants change.
final class IdPVerifiers {
    private var tenantsSeen: [IdPKeySource] = []
    private var verifiers: [TokenVerifier] = []

    struct Accepted {
        let tenant: Int
        let subject: String
        let token: VerifiedToken
    }

    /// Verifies `token` against each tenant in turn; the first that accepts it wins. The
    /// refusal said is the first that is not an unknown `kid`.
    func verify(_ token: UnsafeRawBufferPointer, tenants: [IdPTenant], localUsers: Credentials, revocations: RevocationSet,
                now: Int64) -> Result<Accepted, IdPRefusal> {
        if tenantsSeen.count != tenants.count || zip(tenantsSeen, tenants).contains(where: { $0 !== $1.source })
            || zip(verifiers, tenants).contains(where: { $0.policy.audience != $1.policy.audience || $0.policy.leeway != $1.policy.leeway }) {
            tenantsSeen = tenants.map(\.source)
            verifiers = tenants.map { TokenVerifier(policy: $0.policy) }
        }
        var refusal = IdPRefusal.unknownKid
        for (i, t) in tenants.enumerated() {
            guard let ring = t.source.ring(now: now) else { continue }
            do {
                let v = try verifiers[i].verify(token, use: nil, ring: ring, revocations: revocations, now: now)
                guard t.allows(v.subject, localUsers: localUsers) else {
                    refusal = .subjectNotAllowed
                    continue
                }
                return .success(Accepted(tenant: i, subject: v.subjectString, token: v))
            } catch .unknownKid {
                continue
            } catch {
                if refusal == .unknownKid { refusal = .token(error) }
            }
        }
        return .failure(refusal)
    }
}
