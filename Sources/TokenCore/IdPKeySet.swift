/// The signing keys an identity provider publishes (its JWKS, RFC 7517), read as a relying party
/// must read them: only public signature keys (RSA of at least 2048 bits, EC P-256 and P-384)
/// whose algorithm is on the tenant's allow-list are kept, each under its `kid`. Everything else
/// a set may hold (encryption keys, secret or unknown key types, keys without a `kid`, fields such
/// as `x5c`, `x5u` or `jku`) is passed over, never followed, and said in `skipped`. A key's
/// algorithm comes from the key (its `alg`, or its type and curve when it has none), never from a
/// token: a token naming another algorithm for that `kid` is refused by the verifier. A `kid`
/// on more than one member of the set is ambiguous and no key is kept for it.
public struct IdPKeySet: Sendable {
    public struct Entry: Sendable {
        public let key: PublicKey
        public let algorithm: JWSAlgorithm
    }

    /// The usable keys by `kid`.
    public let keys: [String: Entry]
    /// Why each passed-over key was passed over ("key 2: kty \"OKP\" is not supported").
    public let skipped: [String]

    /// The most keys a set may hold (an IdP publishes a few; more is a misconfiguration or an
    /// attack on the verifier's time).
    public static let maximumKeys = 64

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case invalidDocument(String)
        case tooManyKeys(Int)

        public var description: String {
            switch self {
            case let .invalidDocument(why): return "not a JWK Set: \(why)"
            case let .tooManyKeys(n): return "the JWK Set holds \(n) keys; at most \(IdPKeySet.maximumKeys) are read"
            }
        }
    }

    public static func parse(_ bytes: [UInt8], allowed: Set<JWSAlgorithm>) throws(ParseError) -> IdPKeySet {
        let doc: JSONValue
        do {
            doc = try JSONValue.parse(bytes)
        } catch {
            throw .invalidDocument("invalid JSON (\(error))")
        }
        guard case .object = doc, let list = doc["keys"]?.arrayValue else { throw .invalidDocument("no \"keys\" array") }
        guard list.count <= maximumKeys else { throw .tooManyKeys(list.count) }
        var usable: [(index: Int, kid: String, entry: Entry)] = []
        var skipped: [(index: Int, why: String)] = []
        for (i, jwk) in list.enumerated() {
            switch entry(jwk, allowed: allowed) {
            case let .failure(skip): skipped.append((i, skip.why))
            case let .success((kid, e)): usable.append((i, kid, e))
            }
        }
        // A kid on more than one member (usable or not) is ambiguous.
        var holders: [String: Int] = [:]
        for jwk in list { if let kid = jwk["kid"]?.stringValue { holders[kid, default: 0] += 1 } }
        var found: [String: Entry] = [:]
        for u in usable {
            if holders[u.kid] == 1 {
                found[u.kid] = u.entry
            } else {
                skipped.append((u.index, "kid \"\(u.kid)\" appears more than once; no key is used for it"))
            }
        }
        skipped.sort { $0.index < $1.index }
        return IdPKeySet(keys: found, skipped: skipped.map { "key \($0.index): \($0.why)" })
    }

    private struct Skip: Error { let why: String }

    private static func entry(_ jwk: JSONValue, allowed: Set<JWSAlgorithm>) -> Result<(String, Entry), Skip> {
        /// nil: there but not a string; .some(nil): absent.
        func text(_ name: String) -> String?? {
            guard let v = jwk[name] else { return .some(nil) }
            guard let s = v.stringValue else { return nil }
            return .some(s)
        }
        func bytes(_ name: String) -> [UInt8]? {
            guard let t = jwk[name]?.stringValue, let b = Base64URL.decode(t), !b.isEmpty else { return nil }
            return b
        }
        guard case .object = jwk else { return .failure(Skip(why: "not an object")) }
        guard let kidField = text("kid"), let kid = kidField, !kid.isEmpty else {
            return .failure(Skip(why: "no \"kid\" (a key is chosen by it)"))
        }
        guard let ktyField = text("kty"), let kty = ktyField else { return .failure(Skip(why: "no \"kty\"")) }
        guard let useField = text("use") else { return .failure(Skip(why: "\"use\" is not a string")) }
        if let use = useField, use != "sig" { return .failure(Skip(why: "\"use\" is \"\(use)\", not \"sig\"")) }
        if let ops = jwk["key_ops"] {
            guard let list = ops.arrayValue, list.contains(where: { $0.stringValue == "verify" }) else {
                return .failure(Skip(why: "\"key_ops\" does not include \"verify\""))
            }
        }
        guard let algField = text("alg") else { return .failure(Skip(why: "\"alg\" is not a string")) }
        let key: PublicKey
        let implied: JWSAlgorithm
        switch kty {
        case "RSA":
            guard let n = bytes("n"), let e = bytes("e"), let k = PublicKey(rsaModulus: n, exponent: e) else {
                return .failure(Skip(why: "not a valid RSA public key"))
            }
            guard k.bits >= 2048 else { return .failure(Skip(why: "an RSA key of \(k.bits) bits (at least 2048 are required)")) }
            key = k
            implied = .rs256
        case "EC":
            guard let crvField = text("crv"), let crv = crvField, let x = bytes("x"), let y = bytes("y"),
                  let k = PublicKey(curve: crv, x: x, y: y) else {
                return .failure(Skip(why: "not a valid P-256 or P-384 public key"))
            }
            key = k
            implied = crv == "P-384" ? .es384 : .es256
        default:
            return .failure(Skip(why: "kty \"\(kty)\" is not supported"))
        }
        let algorithm: JWSAlgorithm
        if let alg = algField {
            guard let a = JWSAlgorithm(rawValue: alg), !a.isHMAC else { return .failure(Skip(why: "alg \"\(alg)\" is not supported")) }
            // The algorithm must fit the key: RSA for RS*, and for EC the curve's own.
            let fits = kty == "RSA" ? [.rs256, .rs384, .rs512].contains(a) : a == implied
            guard fits else { return .failure(Skip(why: "alg \"\(alg)\" does not fit an \(kty) key")) }
            algorithm = a
        } else {
            algorithm = implied
        }
        guard allowed.contains(algorithm) else { return .failure(Skip(why: "alg \(algorithm.rawValue) is not allowed")) }
        return .success((kid, Entry(key: key, algorithm: algorithm)))
    }
}
