/// The rule a token broke. Named for logs and metrics; the HTTP answer stays one generic 401.
public enum TokenError: Error, Equatable, Sendable, CaseIterable {
    /// Longer than the size limit (8 KiB by default).
    case oversize
    /// Not three base64url parts separated by dots.
    case malformed
    /// The header or claims part is not strict unpadded base64url (a badly encoded signature
    /// part is `badSignature`).
    case badEncoding
    /// The header is not a JSON object, or its JSON is invalid.
    case malformedHeader
    /// The claims are not a JSON object, or their JSON is invalid.
    case malformedClaims
    /// A JSON member appears twice in the header or the claims.
    case duplicateMember
    /// `alg` is "none" in any spelling.
    case algNone
    /// `alg` is missing, not a string, or not an algorithm this gateway knows.
    case unsupportedAlgorithm
    /// `alg` differs from the algorithm the key is pinned to.
    case algorithmMismatch
    /// The header has no `kid`.
    case missingKid
    /// `kid` is not a string.
    case invalidKid
    /// No key has this `kid`.
    case unknownKid
    /// The key with this `kid` is retired.
    case retiredKey
    /// The header carries `crit`.
    case criticalHeader
    /// The header carries `jku`, `x5u`, `jwk` or `x5c`: keys are never taken from a token.
    case forbiddenHeader
    /// `typ` is present and not "JWT".
    case wrongType
    /// The signature does not verify.
    case badSignature
    /// `exp` is missing.
    case missingExpiry
    /// `exp`, `iat` or `nbf` is not an integer number of seconds.
    case invalidTime
    /// `exp` is not later than now (beyond the leeway).
    case expired
    /// `iat` is missing.
    case missingIssuedAt
    /// `iat` or `nbf` is in the future beyond the leeway.
    case notYetValid
    /// `iss` is missing, not a string, or not the configured issuer.
    case wrongIssuer
    /// `aud` does not name this gateway, or is present when no audience is configured.
    case wrongAudience
    /// `sub` is missing, not a string, empty, too long or holds control characters.
    case invalidSubject
    /// `usefor` is missing or not the expected use (a refresh token used as access, or the reverse).
    case wrongUse
    /// `jti` is missing, not a string, empty or too long.
    case invalidTokenID
    /// The token's `jti` was revoked (logout).
    case revoked
    /// The user's tokens issued before a cut-off were revoked.
    case revokedSubject
    /// `idp` is not a string, empty, too long or holds control characters.
    case invalidIdentityProvider

    /// A stable snake_case name for log lines and metrics.
    public var rule: String {
        switch self {
        case .oversize: return "oversize"
        case .malformed: return "malformed"
        case .badEncoding: return "bad_encoding"
        case .malformedHeader: return "malformed_header"
        case .malformedClaims: return "malformed_claims"
        case .duplicateMember: return "duplicate_member"
        case .algNone: return "alg_none"
        case .unsupportedAlgorithm: return "unsupported_alg"
        case .algorithmMismatch: return "alg_mismatch"
        case .missingKid: return "missing_kid"
        case .invalidKid: return "invalid_kid"
        case .unknownKid: return "unknown_kid"
        case .retiredKey: return "retired_key"
        case .criticalHeader: return "crit_header"
        case .forbiddenHeader: return "forbidden_header"
        case .wrongType: return "wrong_typ"
        case .badSignature: return "bad_signature"
        case .missingExpiry: return "missing_exp"
        case .invalidTime: return "invalid_time"
        case .expired: return "expired"
        case .missingIssuedAt: return "missing_iat"
        case .notYetValid: return "not_yet_valid"
        case .wrongIssuer: return "wrong_issuer"
        case .wrongAudience: return "wrong_audience"
        case .invalidSubject: return "invalid_subject"
        case .wrongUse: return "wrong_use"
        case .invalidTokenID: return "invalid_jti"
        case .revoked: return "revoked"
        case .revokedSubject: return "revoked_subject"
        case .invalidIdentityProvider: return "invalid_idp"
        }
    }
}

/// What a token is for (`usefor` claim).
public enum TokenUse: String, Sendable {
    case access, refresh
}
