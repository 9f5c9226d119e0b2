/// Token lifetimes and the issuer name written into every token.
public struct IssuerSettings: Sendable {
    public var issuer: String
    /// Seconds an access token lives (datarhei default: 10 minutes).
    public var accessLifetime: Int64
    /// Seconds a refresh token lives (datarhei default: 24 hours).
    public var refreshLifetime: Int64

    public init(issuer: String = "datarhei-core", accessLifetime: Int64 = 600, refreshLifetime: Int64 = 86_400) {
        self.issuer = issuer
        self.accessLifetime = accessLifetime
        self.refreshLifetime = refreshLifetime
    }

    public func lifetime(_ use: TokenUse) -> Int64 { use == .access ? accessLifetime : refreshLifetime }
}

/// A token just issued: its text and the claims worth remembering (for revocation, logs).
public struct IssuedToken: Sendable {
    public let token: String
    public let tokenID: String
    public let issuedAt: Int64
    public let expiresAt: Int64
}

/// Why no token could be issued.
public enum IssueError: Error, Equatable, Sendable {
    /// The ring has no active key.
    case noActiveKey
    /// The subject is empty, too long or holds control characters.
    case invalidSubject
    case cryptoFailure
}

/// Signs access and refresh tokens with the ring's active key: header
/// `{"alg","typ":"JWT","kid"}`, claims `iss`, `sub`, `iat`, `exp`, `exi`, `jti` (UUID v4 from
/// libcrypto's DRBG) and `usefor`, as datarhei Core issues them. One issuer per thread (it uses
/// the thread's HMAC contexts); logins are rare, so this path may build Strings.
public final class TokenIssuer {
    public let settings: IssuerSettings
    private let contexts = KeyContexts()

    public init(settings: IssuerSettings) {
        self.settings = settings
    }

    /// Issues a token for `subject` at `now` (Unix seconds).
    /// `loginID`: the login family claim (`lid`) shared by the tokens of one login and its
    /// refreshes, so that refresh-token reuse can void them together. `identityProvider`: the
    /// `idp` claim (the issuer of the identity provider whose sign-in the token stands for).
    public func issue(subject: String, use: TokenUse, ring: KeyRing, now: Int64,
                      lifetime: Int64? = nil, loginID: String? = nil, identityProvider: String? = nil) throws(IssueError) -> IssuedToken {
        guard let index = ring.activeIndex else { throw .noActiveKey }
        let sub = Array(subject.utf8)
        let subjectOK = sub.withUnsafeBytes { !$0.isEmpty && $0.count <= 256 && !TokenVerifier.hasControlCharacter($0) }
        guard subjectOK else { throw .invalidSubject }
        let key = ring.keys[index]
        let exi = lifetime ?? settings.lifetime(use)
        let jti = Crypto.uuidV4()

        var header = JSONWriter(capacity: 64)
        header.raw("{\"alg\":"); header.string(key.algorithm.rawValue)
        header.raw(",\"typ\":\"JWT\",\"kid\":"); header.string(key.kid)
        header.raw("}")

        var claims = JSONWriter(capacity: 256)
        claims.raw("{\"iss\":"); claims.string(settings.issuer)
        claims.raw(",\"sub\":"); claims.string(sub)
        claims.raw(",\"iat\":"); claims.int(now)
        claims.raw(",\"exp\":"); claims.int(now + exi)
        claims.raw(",\"exi\":"); claims.int(exi)
        claims.raw(",\"jti\":"); claims.string(jti)
        claims.raw(",\"usefor\":"); claims.string(use.rawValue)
        if let loginID {
            claims.raw(",\"lid\":"); claims.string(loginID)
        }
        if let identityProvider {
            claims.raw(",\"idp\":"); claims.string(identityProvider)
        }
        claims.raw("}")

        let signingInput = Array((Base64URL.encode(header.bytes) + "." + Base64URL.encode(claims.bytes)).utf8)
        guard let ctx = contexts.context(index, of: ring) else { throw .cryptoFailure }
        let mac = ctx.mac(signingInput)
        guard !mac.isEmpty else { throw .cryptoFailure }
        let token = String(decoding: signingInput, as: UTF8.self) + "." + Base64URL.encode(mac)
        return IssuedToken(token: token, tokenID: jti, issuedAt: now, expiresAt: now + exi)
    }
}
