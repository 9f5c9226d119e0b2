/// A JWS signature algorithm (RFC 7518 section 3). Each key is pinned to exactly one; the
/// token's `alg` header only has to agree with it and never chooses it.
public enum JWSAlgorithm: String, CaseIterable, Sendable {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case es256 = "ES256", es384 = "ES384"

    /// The libcrypto digest name.
    var digestName: StaticString {
        switch self {
        case .hs256, .rs256, .es256: return "SHA256"
        case .hs384, .rs384, .es384: return "SHA384"
        case .hs512, .rs512: return "SHA512"
        }
    }

    public var isHMAC: Bool { self == .hs256 || self == .hs384 || self == .hs512 }

    /// RFC 7518 section 3.2: an HMAC key at least as long as the hash output (and never under 32).
    public var minimumSecretBytes: Int {
        switch self {
        case .hs384: return 48
        case .hs512: return 64
        default: return 32
        }
    }

    /// The algorithm named by a header's `alg` bytes: exact, case-sensitive (RFC 7515 4.1.1).
    static func named(_ node: JSONNode, in bytes: UnsafeRawBufferPointer) -> JWSAlgorithm? {
        for alg in allCases where JSONText.string(node, in: bytes, equals: alg.staticName) { return alg }
        return nil
    }

    var staticName: StaticString {
        switch self {
        case .hs256: return "HS256"
        case .hs384: return "HS384"
        case .hs512: return "HS512"
        case .rs256: return "RS256"
        case .rs384: return "RS384"
        case .rs512: return "RS512"
        case .es256: return "ES256"
        case .es384: return "ES384"
        }
    }
}
