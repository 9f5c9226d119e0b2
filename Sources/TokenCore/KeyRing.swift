/// What a key may still do.
public enum KeyState: String, Sendable, CaseIterable {
    /// Signs new tokens and verifies; exactly one key of a signing ring is active.
    case active
    /// Verifies tokens issued before a rotation; signs nothing.
    case verify
    /// Rejected: tokens carrying its `kid` fail.
    case retired
}

/// Why a key or key ring was refused.
public enum KeyRingError: Error, Equatable, CustomStringConvertible, Sendable {
    case secretTooShort(kid: String, bytes: Int, minimum: Int)
    case duplicateKid(String)
    case noActiveKey
    case severalActiveKeys([String])
    case invalidKid(String)
    case algorithmMismatch(kid: String, detail: String)
    case invalidJWK(index: Int, detail: String)
    case invalidDocument(String)

    public var description: String {
        switch self {
        case let .secretTooShort(kid, bytes, minimum):
            return "key \"\(kid)\": secret is \(bytes) bytes, at least \(minimum) are required"
        case let .duplicateKid(kid): return "kid \"\(kid)\" appears more than once"
        case .noActiveKey: return "no key is active: exactly one key must have state \"active\""
        case let .severalActiveKeys(kids): return "several keys are active (\(kids.joined(separator: ", "))): exactly one must be"
        case let .invalidKid(kid): return "kid \"\(kid)\" is empty, longer than 128 bytes or contains control characters"
        case let .algorithmMismatch(kid, detail): return "key \"\(kid)\": \(detail)"
        case let .invalidJWK(index, detail): return "key #\(index + 1) of the JWK Set: \(detail)"
        case let .invalidDocument(detail): return "not a JWK Set: \(detail)"
        }
    }
}

/// One key of a `KeyRing`.
public struct Key: Sendable {
    public enum Material: Sendable {
        /// An HMAC secret (JWK `kty: oct`).
        case secret([UInt8])
        /// A public key of an external issuer (verify only).
        case publicKey(PublicKey)
    }

    public let kid: String
    let kidBytes: [UInt8]
    public let algorithm: JWSAlgorithm
    public let material: Material
    public var state: KeyState
    /// Unix seconds when the key was created (0 when unknown).
    public var createdAt: Int64
    /// Unix seconds when the key stopped being active (0 when it still is, or unknown).
    public var deactivatedAt: Int64

    public init(kid: String, algorithm: JWSAlgorithm, material: Material, state: KeyState,
                createdAt: Int64 = 0, deactivatedAt: Int64 = 0) throws(KeyRingError) {
        let kidBytes = Array(kid.utf8)
        guard !kidBytes.isEmpty, kidBytes.count <= 128, !kidBytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalidKid(kid)
        }
        switch material {
        case let .secret(secret):
            guard algorithm.isHMAC else {
                throw .algorithmMismatch(kid: kid, detail: "a secret key can only be HS256, HS384 or HS512, not \(algorithm.rawValue)")
            }
            guard secret.count >= algorithm.minimumSecretBytes else {
                throw .secretTooShort(kid: kid, bytes: secret.count, minimum: algorithm.minimumSecretBytes)
            }
        case let .publicKey(key):
            let fits: Bool
            switch algorithm {
            case .rs256, .rs384, .rs512: fits = key.kind == .rsa && key.bits >= 2048
            case .es256: fits = key.kind == .ec && key.bits == 256
            case .es384: fits = key.kind == .ec && key.bits == 384
            default: fits = false
            }
            guard fits else {
                throw .algorithmMismatch(kid: kid, detail: "a \(key.kind) key of \(key.bits) bits cannot be used with \(algorithm.rawValue)")
            }
            guard state != .active else {
                throw .algorithmMismatch(kid: kid, detail: "a public key can only verify (state \"verify\")")
            }
        }
        self.kid = kid
        self.kidBytes = kidBytes
        self.algorithm = algorithm
        self.material = material
        self.state = state
        self.createdAt = createdAt
        self.deactivatedAt = deactivatedAt
    }

    /// The HMAC secret, for keys that have one.
    public var secret: [UInt8]? {
        if case let .secret(s) = material { return s }
        return nil
    }
}

/// An immutable set of keys: the one active key signs, active and `verify` keys verify, retired
/// keys are refused. Shared read-only by every thread; a reload builds a new ring and swaps it
/// in whole. Per-thread HMAC contexts hang off it through `KeyContexts`.
public final class KeyRing: Sendable {
    public let keys: [Key]
    /// Index of the active key, when the ring can sign.
    public let activeIndex: Int?

    /// Validates the rules: unique `kid`s and, when any secret key is present, exactly one active.
    public init(keys: [Key]) throws(KeyRingError) {
        var seen = Set<String>()
        var active: [Int] = []
        for (i, key) in keys.enumerated() {
            guard seen.insert(key.kid).inserted else { throw .duplicateKid(key.kid) }
            if key.state == .active { active.append(i) }
        }
        if active.count > 1 { throw .severalActiveKeys(active.map { keys[$0].kid }) }
        if active.isEmpty && keys.contains(where: { $0.secret != nil }) { throw .noActiveKey }
        self.keys = keys
        self.activeIndex = active.first
    }

    public var activeKey: Key? { activeIndex.map { keys[$0] } }

    /// The index of the key with this `kid` (exact bytes), or nil.
    @inline(__always)
    func index(ofKid kid: JSONNode, in bytes: UnsafeRawBufferPointer) -> Int? {
        for i in keys.indices {
            let matched = keys[i].kidBytes.withUnsafeBytes { JSONText.string(kid, in: bytes, equals: $0) }
            if matched { return i }
        }
        return nil
    }

    /// A ring of one active key holding a configured secret (datarhei's `api.auth.jwt.secret`,
    /// used as the bytes of the string as written). Without an explicit `kid`, one is derived
    /// from a hash of the secret: stable across restarts, and it reveals nothing usable.
    public static func single(secret: [UInt8], kid: String? = nil, algorithm: JWSAlgorithm = .hs256,
                              createdAt: Int64 = 0) throws(KeyRingError) -> KeyRing {
        let kid = kid ?? derivedKid(secret: secret)
        return try KeyRing(keys: [Key(kid: kid, algorithm: algorithm, material: .secret(secret), state: .active, createdAt: createdAt)])
    }

    /// `kid` for a bare secret: the first 16 hex digits of SHA-256 over a label and the secret.
    public static func derivedKid(secret: [UInt8]) -> String {
        "k" + String(Crypto.hex(Crypto.sha256(Array("gateway-kid\0".utf8) + secret)).prefix(16))
    }

    /// A new random HS256 key of 32 bytes (256 bits, the HS256 output size).
    public static func generateKey(state: KeyState = .active, now: Int64, algorithm: JWSAlgorithm = .hs256) -> Key {
        let secret = Crypto.randomBytes(algorithm.minimumSecretBytes)
        let kid = "k" + Crypto.hex(Crypto.randomBytes(8))
        // A fresh random kid and a secret of the right size cannot fail validation.
        return try! Key(kid: kid, algorithm: algorithm, material: .secret(secret), state: state, createdAt: now)
    }
}
